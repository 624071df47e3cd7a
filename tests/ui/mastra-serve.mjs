// Serves Mastra's own playground (the `dist` folder of the `mastra` CLI's package) the way
// `mastra dev` does: its files at the root, `index.html` for every page path, and `/api/*`
// passed through to the server under test (here edgestra), so the page talks to the API on its
// own origin. Returns the URL it listens on.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css',
  '.svg': 'image/svg+xml', '.ico': 'image/x-icon', '.woff': 'font/woff', '.woff2': 'font/woff2',
  '.ttf': 'font/ttf', '.json': 'application/json', '.wasm': 'application/wasm',
};

export async function servePlayground(dist, apiBase) {
  const index = fs
    .readFileSync(path.join(dist, 'index.html'), 'utf8')
    .replaceAll('%%MASTRA_TELEMETRY_DISABLED%%', 'true');
  const api = new URL(apiBase);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://playground');
    if (url.pathname.startsWith('/api')) {
      const upstream = http.request(
        { host: api.hostname, port: api.port, method: req.method, path: req.url, headers: { ...req.headers, host: api.host } },
        (up) => { res.writeHead(up.statusCode, up.headers); up.pipe(res); },
      );
      upstream.on('error', (e) => { res.writeHead(502); res.end(String(e)); });
      req.pipe(upstream);
      return;
    }
    if (url.pathname === '/refresh-events') {
      // `mastra dev` reloads the page through this stream when files change; nothing changes here.
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(': idle\n\n');
      return;
    }
    const file = path.join(dist, path.normalize(url.pathname).replace(/^(\.\.[/\\])+/, ''));
    if (url.pathname !== '/' && file.startsWith(dist) && fs.existsSync(file) && fs.statSync(file).isFile()) {
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream' });
      fs.createReadStream(file).pipe(res);
      return;
    }
    res.writeHead(200, { 'content-type': TYPES['.html'] });
    res.end(index);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}
