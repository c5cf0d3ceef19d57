import Link from 'next/link';
import { notFound } from 'next/navigation';
import { POST_COUNT, allPosts, getPost } from '@/lib/posts.js';
import LikeButton from '../../components/LikeButton.jsx';
import Toc from '../../components/Toc.jsx';

export const dynamicParams = false;

export function generateStaticParams() {
  return allPosts().map((p) => ({ slug: p.slug }));
}

function find(slug) {
  const m = /^post-(\d{4})$/.exec(slug);
  const i = m ? Number.parseInt(m[1], 10) : -1;
  return i >= 0 && i < POST_COUNT ? getPost(i) : null;
}

export async function generateMetadata({ params }) {
  const { slug } = await params;
  const post = find(slug);
  return post ? { title: post.title, description: post.excerpt } : {};
}

export default async function PostPage({ params }) {
  const { slug } = await params;
  const post = find(slug);
  if (!post) notFound();
  return (
    <article>
      <h1>{post.title}</h1>
      <div className="meta">Published {post.date}</div>
      <ul className="tags">
        {post.tags.map((t) => (
          <li key={t}><Link href={`/tags/${t}`}>{t}</Link></li>
        ))}
      </ul>
      {post.cover ? <img className="cover" src={post.cover} alt="" width={640} height={320} /> : null}
      <Toc headings={post.sections.map((s) => s.heading)} />
      {post.sections.map((s, k) => (
        <section key={k} id={`s${k}`}>
          <h2>{s.heading}</h2>
          {s.paragraphs.map((p, j) => <p key={j}>{p}</p>)}
        </section>
      ))}
      <LikeButton slug={post.slug} />
      <h3>Related</h3>
      <ul>
        {post.related.map((j) => {
          const r = getPost(j);
          return <li key={j}><Link href={`/posts/${r.slug}`}>{r.title}</Link></li>;
        })}
      </ul>
    </article>
  );
}
