/**
 * How every tool here (Vitest browser mode, Playwright e2e, the browser bench) launches Chromium.
 * Debian's Chromium exposes WebGPU on SwiftShader when unsafe WebGPU is enabled; nothing may download a browser.
 */
export const chromiumExecutablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const chromiumArgs = [
  '--enable-unsafe-webgpu',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
];
