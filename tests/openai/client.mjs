// The official `openai` npm client against a running edgestra (tests/conformance/edgestra.yaml):
// model list, a chat completion whole and streamed, a tool call, a JSON-schema answer,
// embeddings, an agent as a model, and the SDK's typed errors.
// Usage: OPENAI_FROM=<folder with node_modules/openai> BASE_URL=http://127.0.0.1:PORT node client.mjs
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const require = createRequire(`${process.env.OPENAI_FROM}/`);
const { default: OpenAI } = require('openai');

const client = new OpenAI({ baseURL: `${process.env.BASE_URL}/v1`, apiKey: 'unused', maxRetries: 0 });
const results = [];
async function check(name, fn) {
  try {
    await fn();
    results.push([name, 'ok']);
  } catch (e) {
    results.push([name, `FAILED: ${e.stack || e}`]);
  }
}
const hello = [{ role: 'user', content: 'Say hello.' }];

await check('models are listed, agents as agent:<id>', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  for (const id of ['chat', 'embed', 'agent:weatherAgent', 'agent:chatAgent']) assert.ok(ids.includes(id), `${id} in ${ids}`);
});

let whole;
await check('a chat completion', async () => {
  whole = await client.chat.completions.create({ model: 'chat', messages: hello, max_tokens: 8, temperature: 0 });
  assert.equal(whole.object, 'chat.completion');
  assert.equal(whole.choices[0].message.role, 'assistant');
  assert.ok(whole.choices[0].message.content.length > 0);
  assert.ok(whole.usage.prompt_tokens > 0 && whole.usage.completion_tokens <= 8);
});

await check('the same completion streamed', async () => {
  const stream = await client.chat.completions.create({
    model: 'chat', messages: hello, max_tokens: 8, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) continue;
    text += choice.delta.content ?? '';
    finish = choice.finish_reason ?? finish;
  }
  assert.equal(text, whole.choices[0].message.content);
  assert.ok(['stop', 'length'].includes(finish), finish);
  assert.deepEqual(usage, whole.usage);
});

await check('a tool call comes back to the client', async () => {
  const tools = [{
    type: 'function',
    function: {
      name: 'get_forecast',
      description: 'Weather forecast for a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  }];
  const r = await client.chat.completions.create({
    model: 'chat', messages: [{ role: 'user', content: 'What is the weather in Lisbon?' }], tools, tool_choice: 'required', temperature: 0,
  });
  const choice = r.choices[0];
  assert.equal(choice.finish_reason, 'tool_calls');
  const call = choice.message.tool_calls[0];
  assert.equal(call.function.name, 'get_forecast');
  assert.equal(JSON.parse(call.function.arguments).city, 'Lisbon');
  // The SDK's streaming helper assembles the same call from its chunks.
  const stream = client.chat.completions.stream({
    model: 'chat', messages: [{ role: 'user', content: 'What is the weather in Lisbon?' }], tools, tool_choice: 'required', temperature: 0,
  });
  const final = await stream.finalChatCompletion();
  assert.equal(final.choices[0].message.tool_calls[0].function.arguments, call.function.arguments);
});

await check('a JSON-schema answer validates', async () => {
  const r = await client.chat.completions.create({
    model: 'chat',
    messages: [{ role: 'user', content: 'Anna is 31 years old. Give her name and age.' }],
    temperature: 0,
    response_format: {
      type: 'json_schema',
      json_schema: {
        name: 'person', strict: true,
        schema: { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'], additionalProperties: false },
      },
    },
  });
  const answer = JSON.parse(r.choices[0].message.content);
  assert.equal(typeof answer.name, 'string');
  assert.ok(Number.isInteger(answer.age));
  assert.deepEqual(Object.keys(answer).sort(), ['age', 'name']);
});

await check('embeddings, float and base64', async () => {
  const r = await client.embeddings.create({ model: 'embed', input: ['The cat sat.', 'Stock prices fell.'] });
  assert.equal(r.data.length, 2);
  assert.equal(r.data[0].embedding.length, 384);
  assert.ok(r.usage.prompt_tokens > 0);
  // The SDK asks for base64 by default when no format is given and decodes it itself.
  const b = await client.embeddings.create({ model: 'embed', input: 'The cat sat.', encoding_format: 'base64' });
  assert.equal(typeof b.data[0].embedding, 'string');
  const bytes = Buffer.from(b.data[0].embedding, 'base64');
  const floats = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  assert.equal(floats.length, 384);
  const dot = floats.reduce((s, x, i) => s + x * r.data[0].embedding[i], 0);
  assert.ok(dot > 0.999, `${dot}`);
});

await check('an agent answers as a model, its tool run on the server', async () => {
  const r = await client.chat.completions.create({
    model: 'agent:weatherAgent', messages: [{ role: 'user', content: 'What is the weather in Paris?' }], temperature: 0, user: 'sdk-test',
  });
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason), r.choices[0].finish_reason);
  assert.equal(r.choices[0].message.tool_calls, undefined);
  assert.ok(r.choices[0].message.content.length > 0);
});

await check('errors are the SDK\'s typed errors', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages: hello }),
    (e) => e instanceof OpenAI.NotFoundError && /does not exist/.test(e.message),
  );
  await assert.rejects(
    client.chat.completions.create({ model: 'chat', messages: hello, temperature: 9 }),
    (e) => e instanceof OpenAI.BadRequestError && e.type === 'invalid_request_error',
  );
});

for (const [name, outcome] of results) console.log(`openai client: ${name}: ${outcome}`);
const failed = results.filter(([, o]) => o !== 'ok').length;
console.log(`openai client: ${results.length - failed}/${results.length} passed`);
process.exit(failed ? 1 : 0);
