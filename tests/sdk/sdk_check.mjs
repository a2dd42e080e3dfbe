// One check of the official OpenAI Node SDK (npm `openai`, v4) against a base URL: the
// proxy (http://127.0.0.1:<port>/v1) or, for the baseline, the fake upstream itself.
// tests/sdk/run.py runs it once per check and base URL and judges what it prints.
//
//   node sdk_check.mjs <check> <baseURL> [file]
//
// checks: chat, stream, upload (file: the path to upload), error, abort, realtime, and for
// the keep-alive proxy: gappy (a stream with silences), slowjson (an answer whose head is late);
// for the failover proxy: failover (chat then stream, one process, so the second request
// comes while the failed origin is still in its backoff).
// OP_SDK_API_KEY, when set, is the key the SDK sends (the proxy's access key).
// Prints one JSON line: {"observed": {...}, "timing": {...}} on success, or
// {"error": "..."} when the SDK call failed in a way the check did not expect.
// `observed` is what the SDK handed to the program, compared between the proxy and the
// direct run; `timing` is not compared (run.py reads bounds from it).
// The module is loaded from build/sdk-node (tests/sdk/setup.sh) through OP_SDK_MODULE.
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';

const [check, baseURL, file] = process.argv.slice(2);
const modulePath = process.env.OP_SDK_MODULE;
if (!check || !baseURL || !modulePath) {
  process.stderr.write('usage: OP_SDK_MODULE=<.../openai/index.mjs> node sdk_check.mjs <check> <baseURL> [file]\n');
  process.exit(2);
}
const { default: OpenAI, toFile } = await import(pathToFileURL(modulePath).href);

const GOOD_KEY = process.env.OP_SDK_API_KEY || 'sk-sdk-check-good';
const BAD_KEY = 'sk-sdk-check-bad';

function client(apiKey = GOOD_KEY) {
  // maxRetries 0: an error must reach the program as the first answer, not a retry's.
  return new OpenAI({ apiKey, baseURL, maxRetries: 0, timeout: 30_000, organization: null, project: null });
}

const messages = [{ role: 'user', content: 'Say hello through the proxy' }];
const ms = () => Number(process.hrtime.bigint() / 1000n) / 1000;

async function chat() {
  const c = await client().chat.completions.create({ model: 'sdk-json', messages, temperature: 0 });
  return {
    observed: {
      id: c.id, object: c.object, model: c.model, content: c.choices[0].message.content,
      role: c.choices[0].message.role, finish_reason: c.choices[0].finish_reason, usage: c.usage,
      request_id: c._request_id,
    },
  };
}

async function stream(model = 'sdk-stream') {
  const t0 = ms();
  const s = await client().chat.completions.create({ model, messages, stream: true });
  const deltas = [];
  const arrivals = [];
  let finish = null;
  for await (const chunk of s) {
    arrivals.push(ms() - t0);
    deltas.push(chunk.choices[0].delta.content ?? null);
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  return {
    observed: { chunks: deltas.length, deltas, text: deltas.join(''), finish_reason: finish },
    timing: { arrivals_ms: arrivals },
  };
}

async function upload() {
  const f = await client().files.create({ file: fs.createReadStream(file), purpose: 'assistants' });
  return {
    observed: {
      id: f.id, object: f.object, bytes: f.bytes, filename: f.filename, purpose: f.purpose,
      sha256: f.sha256, content_type: f.content_type,
    },
  };
}

async function error() {
  try {
    await client(BAD_KEY).chat.completions.create({ model: 'sdk-json', messages });
  } catch (e) {
    return {
      observed: {
        class: e.constructor.name, is_authentication_error: e instanceof OpenAI.AuthenticationError,
        is_api_error: e instanceof OpenAI.APIError, status: e.status ?? null, message: e.message,
        code: e.code ?? null, type: e.type ?? null, param: e.param ?? null,
        error_message: e.error?.message ?? null, request_id: e.request_id ?? null,
      },
    };
  }
  return { error: 'the request with a bad key did not throw' };
}

async function abort() {
  const s = await client().chat.completions.create({ model: 'sdk-long', messages, stream: true });
  const deltas = [];
  let ended = 'aborted';
  try {
    for await (const chunk of s) {
      deltas.push(chunk.choices[0].delta.content ?? null);
      if (deltas.length === 3) {
        s.controller.abort();
        break;
      }
    }
  } catch (e) {
    ended = 'threw ' + e.constructor.name + ': ' + e.message;
  }
  return { observed: { chunks: deltas.length, deltas, ended } };
}

// The Realtime API's WebSocket client (openai/beta/realtime/ws, on the `ws` package). It
// always connects with wss://, so through the proxy this needs the HTTPS listener.
async function realtime() {
  const wsModule = new URL('beta/realtime/ws.mjs', pathToFileURL(modulePath)).href;
  const { OpenAIRealtimeWS } = await import(wsModule);
  const rt = new OpenAIRealtimeWS({ model: 'sdk-realtime' }, client());
  const events = [];
  let closeCode = null;
  const finished = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no response.done within 20 s')), 20_000);
    rt.on('error', (e) => { clearTimeout(timer); reject(new Error(e.message)); });
    rt.on('event', (ev) => {
      events.push(ev);
      if (ev.type === 'session.created') {
        rt.send({ type: 'conversation.item.create',
                  item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Say hello' }] } });
        rt.send({ type: 'response.create', response: { modalities: ['text'] } });
      }
      if (ev.type === 'response.done') { clearTimeout(timer); resolve(); }
    });
  });
  await finished;
  const closed = new Promise((resolve) => rt.socket.on('close', (code) => { closeCode = code; resolve(); }));
  rt.close({ code: 1000, reason: 'done' });
  await Promise.race([closed, new Promise((r) => setTimeout(r, 5000))]);
  return {
    observed: {
      types: events.map((e) => e.type),
      text: events.filter((e) => e.type === 'response.text.delta').map((e) => e.delta).join(''),
      session: events[0]?.session?.id ?? null,
      close_code: closeCode,
    },
  };
}

// A JSON answer through -json-keepalive: the same, but no _request_id (the upstream's
// head is not relayed once the keep-alive head went out).
async function slowjson() {
  const c = await client().chat.completions.create({ model: 'sdk-slow-json', messages, temperature: 0 });
  return {
    observed: {
      id: c.id, object: c.object, model: c.model, content: c.choices[0].message.content,
      finish_reason: c.choices[0].finish_reason, usage: c.usage,
    },
  };
}

// Through a proxy whose first origin answers 503: a JSON answer then a stream, both from
// the second origin.
async function failover() {
  const c = await chat();
  const s = await stream();
  return { observed: { chat: c.observed, stream: s.observed }, timing: s.timing };
}

const checks = {
  chat, stream, upload, error, abort, realtime, gappy: () => stream('sdk-gappy'), slowjson, failover,
};
let out;
try {
  if (!checks[check]) throw new Error('unknown check ' + check);
  out = await checks[check]();
} catch (e) {
  out = { error: `${e.constructor.name}: ${e.message}` + (e.status ? ` (status ${e.status})` : '') };
}
// Exit at once: a kept-alive socket must not hold the process (and the timing) open.
process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
