'use client';

import { useState } from 'react';

export default function Toc({ headings }) {
  const [open, setOpen] = useState(true);
  return (
    <nav className="toc">
      <button type="button" className="like" onClick={() => setOpen(!open)}>
        {open ? 'Hide contents' : 'Show contents'}
      </button>
      {open ? (
        <ol>
          {headings.map((h, k) => <li key={k}><a href={`#s${k}`}>{h}</a></li>)}
        </ol>
      ) : null}
    </nav>
  );
}
