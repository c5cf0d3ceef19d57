// Deterministic synthetic blog content: the same BENCH_SITE_PAGES (env, at build time) always
// gives byte-identical pages, so out/ only changes when the project does.
export const POST_COUNT = Number.parseInt(process.env.BENCH_SITE_PAGES || '420', 10);
export const TAG_COUNT = Number.parseInt(process.env.BENCH_SITE_TAGS || '50', 10);
export const COVER_EVERY = 4; // one cover image (public/covers/*.svg) per 4 posts

const WORDS = (
  'deploy release rollout canary bucket object cache header manifest service task cluster ' +
  'region image registry digest commit branch webhook queue worker pipeline build artifact ' +
  'static export route segment payload prefetch layout hydrate render stream chunk bundle ' +
  'latency throughput budget retry backoff lease ledger audit grace stale invalidate origin ' +
  'edge distribution certificate domain redirect rewrite preview promote rollback health ' +
  'probe metric trace span sample signal drain quorum replica shard index vacuum snapshot'
).split(' ');

function rng(seed) {
  // mulberry32
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = (r, list) => list[Math.floor(r() * list.length)];
const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);

function sentence(r) {
  const n = 8 + Math.floor(r() * 14);
  const words = Array.from({ length: n }, () => pick(r, WORDS));
  return cap(words.join(' ')) + '.';
}

function paragraph(r) {
  const n = 3 + Math.floor(r() * 5);
  return Array.from({ length: n }, () => sentence(r)).join(' ');
}

export function tagName(i) {
  return `${WORDS[i % WORDS.length]}-${Math.floor(i / WORDS.length) + 1}`;
}

export const allTags = () => Array.from({ length: TAG_COUNT }, (_, i) => tagName(i));

export const slugOf = (i) => `post-${String(i).padStart(4, '0')}`;

export function getPost(i) {
  const r = rng(0x9e3779b9 ^ (i * 2654435761));
  const title = `${cap(pick(r, WORDS))} ${pick(r, WORDS)} and ${pick(r, WORDS)} (part ${i})`;
  const tagCount = 1 + Math.floor(r() * 3);
  const tags = [...new Set(Array.from({ length: tagCount }, () => tagName(Math.floor(r() * TAG_COUNT))))];
  const sections = Array.from({ length: 2 + Math.floor(r() * 3) }, () => ({
    heading: cap(`${pick(r, WORDS)} ${pick(r, WORDS)}`),
    paragraphs: Array.from({ length: 2 + Math.floor(r() * 3) }, () => paragraph(r)),
  }));
  const day = 1 + (i % 28);
  const month = 1 + (Math.floor(i / 28) % 12);
  const date = `2025-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`;
  const related = Array.from({ length: 4 }, () => Math.floor(r() * POST_COUNT)).filter((j) => j !== i);
  return {
    index: i,
    slug: slugOf(i),
    title,
    date,
    tags,
    sections,
    related: [...new Set(related)],
    cover: i % COVER_EVERY === 0 ? `/covers/${slugOf(i)}.svg` : null,
    excerpt: sentence(r),
  };
}

export const allPosts = () => Array.from({ length: POST_COUNT }, (_, i) => getPost(i));

export const postsWithTag = (tag) => allPosts().filter((p) => p.tags.includes(tag));
