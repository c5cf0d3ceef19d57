'use client';

import Link from 'next/link';
import { useMemo, useState } from 'react';

export default function Search({ titles }) {
  const [q, setQ] = useState('');
  const hits = useMemo(
    () => (q ? titles.filter((t) => t.title.toLowerCase().includes(q.toLowerCase())).slice(0, 8) : []),
    [q, titles],
  );
  return (
    <div className="search">
      <input value={q} onChange={(e) => setQ(e.target.value)} placeholder="Search recent posts" />
      <ul>
        {hits.map((h) => <li key={h.slug}><Link href={`/posts/${h.slug}`}>{h.title}</Link></li>)}
      </ul>
    </div>
  );
}
