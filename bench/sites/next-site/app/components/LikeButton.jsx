'use client';

import { useEffect, useState } from 'react';

export default function LikeButton({ slug }) {
  const [likes, setLikes] = useState(0);
  useEffect(() => {
    const saved = Number.parseInt(window.localStorage.getItem(`likes:${slug}`) || '0', 10);
    setLikes(saved);
  }, [slug]);
  const like = () => {
    const next = likes + 1;
    window.localStorage.setItem(`likes:${slug}`, String(next));
    setLikes(next);
  };
  return (
    <button type="button" className="like" onClick={like}>
      ♥ {likes}
    </button>
  );
}
