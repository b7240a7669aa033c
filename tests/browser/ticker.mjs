// Drives the ticker page in headless Chromium: enter the key, connect, see
// prices change and charts drawn, save a screenshot.
// Usage: node ticker.mjs <base-url> <api-key> <screenshot.png>
import { chromium } from 'playwright-core';

const [baseUrl, apiKey, screenshot] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

const browser = await chromium.launch({
  executablePath,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 860 } });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(baseUrl, { waitUntil: 'load' });
  await page.fill('#api-key', apiKey);
  await page.click('#connect');
  await page.waitForSelector('#status[data-state="connected"]', { timeout: 15000 });

  const priceOf = (symbol) =>
    page.$eval(`tr[data-symbol="${symbol}"] .price`, (el) => el.textContent.trim());
  await page.waitForFunction(
    () => /\d/.test(document.querySelector('tr[data-symbol="BTC-USD"] .price')?.textContent || ''),
    null, { timeout: 10000 });
  const first = await priceOf('BTC-USD');
  await page.waitForFunction(
    (p) => document.querySelector('tr[data-symbol="BTC-USD"] .price').textContent.trim() !== p,
    first, { timeout: 10000 });
  const second = await priceOf('BTC-USD');

  await page.waitForFunction(
    () => {
      const charts = [...document.querySelectorAll('canvas.chart')];
      return charts.length >= 3 && charts.every((c) => Number(c.dataset.points) >= 5);
    },
    null, { timeout: 15000 });
  // A drawn chart has non-background pixels.
  const inked = await page.$$eval('canvas.chart', (charts) => charts.map((c) => {
    const ctx = c.getContext('2d');
    const { data } = ctx.getImageData(0, 0, c.width, c.height);
    let n = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) n++;
    return n;
  }));
  // SETTLE_MS lets a documentation screenshot show a fuller chart.
  await page.waitForTimeout(Number(process.env.SETTLE_MS || 0));
  const user = (await page.textContent('#user')).trim();
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ first, second, inked, user, errors }));
} finally {
  await browser.close();
}
