import Link from 'next/link';
import { allPosts, allTags } from '@/lib/posts.js';
import Search from './components/Search.jsx';

export default function Home() {
  const posts = allPosts();
  return (
    <>
      <h1>All posts</h1>
      <Search titles={posts.slice(0, 60).map((p) => ({ slug: p.slug, title: p.title }))} />
      <ul className="tags">
        {allTags().map((t) => (
          <li key={t}><Link href={`/tags/${t}`} prefetch={false}>{t}</Link></li>
        ))}
      </ul>
      <ul className="post-list">
        {posts.map((p) => (
          <li key={p.slug}>
            <Link href={`/posts/${p.slug}`} prefetch={false}>{p.title}</Link>
            <div className="meta">{p.date}</div>
          </li>
        ))}
      </ul>
    </>
  );
}
