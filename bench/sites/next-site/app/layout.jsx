import Link from 'next/link';
import './globals.css';

export const metadata = {
  title: { default: 'Gantry bench blog', template: '%s | Gantry bench blog' },
  description: 'A synthetic static site used to benchmark site syncs.',
};

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>
        <header className="site">
          <Link href="/" className="brand">Bench blog</Link>
          <nav>
            <Link href="/">Posts</Link> · <Link href="/about">About</Link>
          </nav>
        </header>
        <main>{children}</main>
        <footer className="site">Generated for bench/sites.sh — every page is static.</footer>
      </body>
    </html>
  );
}
