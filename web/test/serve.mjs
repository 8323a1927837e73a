// What the browser tests share: a static server for web/dist on 127.0.0.1
// (with a /report endpoint the page posts its results to) and headless
// Chromium with WebGPU (SwiftShader where there is no GPU).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm', '.png': 'image/png' };

// Serves `dist`; `reported` resolves with the first body POSTed to /report.
export async function serve(dist) {
  let reportResolve;
  const reported = new Promise((r) => { reportResolve = r; });
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (req.method === 'POST' && url.pathname === '/report') {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => { res.end('ok'); reportResolve(body); });
      return;
    }
    const file = path.normalize(path.join(dist, decodeURIComponent(url.pathname === '/' ? '/index.html' : url.pathname)));
    if (!file.startsWith(dist) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.statusCode = 404; res.end('not found'); return;
    }
    res.setHeader('content-type', TYPES[path.extname(file)] || 'application/octet-stream');
    fs.createReadStream(file).pipe(res);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { port: server.address().port, reported, close: () => server.close() };
}

// Headless Chromium at `browserPath` with WebGPU enabled.
export function launch(browserPath) {
  return chromium.launch({
    timeout: 120000,
    executablePath: browserPath,
    headless: true,
    args: ['--no-sandbox', '--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--disable-quic',
      '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
