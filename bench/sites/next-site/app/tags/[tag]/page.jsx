import Link from 'next/link';
import { allTags, postsWithTag } from '@/lib/posts.js';

export const dynamicParams = false;

export function generateStaticParams() {
  return allTags().map((tag) => ({ tag }));
}

export async function generateMetadata({ params }) {
  const { tag } = await params;
  return { title: `Tagged ${tag}` };
}

export default async function TagPage({ params }) {
  const { tag } = await params;
  const posts = postsWithTag(tag);
  return (
    <>
      <h1>Tagged “{tag}”</h1>
      <p className="meta">{posts.length} posts</p>
      <ul className="post-list">
        {posts.map((p) => (
          <li key={p.slug}>
            <Link href={`/posts/${p.slug}`} prefetch={false}>{p.title}</Link>
            <p>{p.excerpt}</p>
          </li>
        ))}
      </ul>
    </>
  );
}
