// Drives the playground in headless Chromium (playwright-core, the system browser): the tools
// page lists the project's tools, a tool's form is built from its schema, and executing it
// shows the result; a bad input shows the server's validation error; an agent's chat streams
// an answer with its tool call and keeps the conversation in memory across a reload; a workflow
// runs from its page, stops at its approval step, and finishes when the form is resumed.
// Usage: PLAYWRIGHT_FROM=<dir with node_modules/playwright-core> BASE_URL=http://127.0.0.1:4111 node playground.mjs [screenshot.png]
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(path.resolve(process.env.PLAYWRIGHT_FROM || '.'), 'package.json'));
const { chromium } = require('playwright-core');
const BASE = process.env.BASE_URL || 'http://127.0.0.1:4111';
let passed = 0, failed = 0;
async function check(name, fn) {
  try { await fn(); passed++; console.log(`PASS ${name}`); }
  catch (e) { failed++; console.log(`FAIL ${name}: ${String(e.message || e).split('\n')[0]}`); }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
page.setDefaultTimeout(10000);
try {
  await check('playground.connects', async () => {
    await page.goto(`${BASE}/`);
    await page.waitForFunction(() => document.querySelector('[data-testid="conn"]')?.textContent.trim() === 'connected');
  });
  await check('playground.lists-tools', async () => {
    await page.goto(`${BASE}/#/tools`);
    await page.waitForSelector('[data-testid="tool-link-weatherTool"]');
  });
  await check('playground.executes-a-tool', async () => {
    await page.click('[data-testid="tool-link-weatherTool"]');
    await page.waitForSelector('[data-testid="tool-form"] [name="city"]');
    await page.fill('[data-testid="tool-form"] [name="city"]', 'Lisbon');
    await page.click('[data-testid="tool-execute"]');
    const result = await page.waitForSelector('[data-testid="tool-result"]:has-text("temperatureC")');
    const text = await result.textContent();
    if (!text.includes('Lisbon')) throw new Error(`result does not name the city: ${text}`);
  });
  await check('playground.shows-validation-errors', async () => {
    await page.goto(`${BASE}/tools/weatherTool`);
    await page.waitForSelector('[data-testid="tool-form"]');
    await page.click('[data-testid="tool-raw-toggle"]');
    await page.fill('[data-testid="tool-raw"]', '{"city": 5}');
    await page.click('[data-testid="tool-execute"]');
    await page.waitForSelector('[data-testid="tool-error"]:has-text("Invalid tool input")');
  });
  await check('playground.chats-with-an-agent', async () => {
    page.setDefaultTimeout(60000); // the local model answers in seconds, slower on a busy machine
    await page.goto(`${BASE}/#/agents`);
    await page.click('[data-testid="agent-link-weatherAgent"]');
    await page.fill('[data-testid="chat-input"]', 'What is the weather in Berlin?');
    await page.click('[data-testid="chat-send"]');
    await page.waitForSelector('[data-testid="chat-reply"] [data-testid="chat-tool-weatherTool"]');
    await page.waitForFunction(() => !document.querySelector('[data-testid="chat-send"]').disabled);
    const text = await page.textContent('[data-testid="chat-reply"]');
    if (!text.includes('result')) throw new Error(`no tool result in the reply: ${text}`);
    // The conversation is in the agent's memory: a reload shows it again.
    await page.reload();
    await page.waitForSelector('[data-testid="chat-msg"]:has-text("What is the weather in Berlin?")');
    page.setDefaultTimeout(10000);
  });
  await check('playground.runs-a-workflow-through-its-approval', async () => {
    await page.goto(`${BASE}/#/workflows`);
    await page.click('[data-testid="workflow-link-approvalWorkflow"]');
    await page.fill('[data-testid="workflow-form"] [name="item"]', 'a laptop');
    await page.click('[data-testid="workflow-run"]');
    await page.waitForSelector('[data-testid="workflow-step-request-approval"][data-status="suspended"]');
    await page.check('[data-testid="workflow-resume-form"] [name="approved"]');
    await page.click('[data-testid="workflow-resume"]');
    const status = await page.waitForSelector('[data-testid="workflow-status"]');
    if (!(await status.textContent()).includes('success')) throw new Error(`run did not succeed: ${await status.textContent()}`);
    const result = await page.textContent('[data-testid="workflow-result"]');
    if (!result.includes('a laptop was approved')) throw new Error(`unexpected result: ${result}`);
    await page.waitForSelector('[data-testid="workflow-step-request-approval"][data-status="success"]');
  });
  if (process.argv[2]) await page.screenshot({ path: process.argv[2], fullPage: true });
  // A server with an API key: the page asks for it once, then works.
  if (process.env.KEYED_URL) {
    await check('playground.asks-for-the-api-key', async () => {
      const keyed = await browser.newPage();
      keyed.setDefaultTimeout(10000);
      let asked = 0;
      keyed.on('dialog', d => { asked++; d.accept(process.env.KEYED_KEY); });
      await keyed.goto(`${process.env.KEYED_URL}/#/tools`);
      await keyed.waitForSelector('[data-testid="tool-link-calculator"]');
      if (asked < 1) throw new Error('the page never asked for the key');
      await keyed.close();
    });
  }
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
