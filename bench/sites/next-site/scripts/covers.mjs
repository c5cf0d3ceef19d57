// Writes public/covers/post-NNNN.svg for every COVER_EVERY-th post (deterministic content),
// the static images a real blog ships next to its pages.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { COVER_EVERY, POST_COUNT, slugOf } from '../lib/posts.js';

const dir = new URL('../public/covers/', import.meta.url);
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
let n = 0;
for (let i = 0; i < POST_COUNT; i += COVER_EVERY) {
  const hue = (i * 37) % 360;
  const bars = Array.from({ length: 12 }, (_, k) => {
    const h = 20 + ((i * 13 + k * 29) % 140);
    return `<rect x="${20 + k * 48}" y="${300 - h}" width="36" height="${h}" fill="hsl(${(hue + k * 9) % 360},60%,55%)"/>`;
  }).join('');
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="640" height="320" viewBox="0 0 640 320">` +
    `<rect width="640" height="320" fill="hsl(${hue},40%,92%)"/>${bars}` +
    `<text x="24" y="48" font-family="sans-serif" font-size="28" fill="#222">${slugOf(i)}</text></svg>\n`;
  writeFileSync(new URL(`${slugOf(i)}.svg`, dir), svg);
  n++;
}
console.log(`covers: wrote ${n} SVGs to public/covers/`);
