//! `gantry site sync`: the static-site sync engine as a standalone command for any CI.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::adapters::{aws, cloudfront::CloudFront, s3::S3Store};
use crate::domain::{Grace, HostRedirect, Preset};
use crate::plan::edge::EdgeRules;
use crate::plan::headers::HeaderRules;
use crate::ports::Cdn;
use crate::sites::sync::{LogProgress, Progress};
use crate::sites::{sync, S3Target, SyncOptions, SyncReport};

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The build output directory (e.g. `out` of a Next.js static export).
    pub dir: PathBuf,
    /// Destination, `s3://BUCKET[/PREFIX]`.
    pub target: String,
    /// Header preset: `nextjs` (immutable `_next/static`, revalidated HTML/RSC) or `plain`.
    #[arg(long, default_value = "plain")]
    pub preset: Preset,
    /// CloudFront distribution to invalidate (and to attach edge rules to).
    #[arg(long)]
    pub distribution: Option<String>,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Cache-Control rule `GLOB=VALUE`, before the preset's; repeatable; first match wins.
    #[arg(long = "cache-control", value_name = "GLOB=VALUE")]
    pub cache_control: Vec<String>,
    /// Content-Type for files without an extension.
    #[arg(long, default_value = "application/octet-stream")]
    pub extensionless_type: String,
    /// Uploads in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Days an object that left the build is kept before deletion.
    #[arg(long, default_value_t = 7)]
    pub grace_days: i64,
    /// Releases an object that left the build is kept for before deletion.
    #[arg(long, default_value_t = 3)]
    pub grace_releases: u64,
    /// Above this many paths, invalidations collapse to wildcards.
    #[arg(long, default_value_t = 100)]
    pub max_invalidation_paths: usize,
    /// Wait up to this many seconds for the invalidation to complete.
    #[arg(long, value_name = "SECONDS")]
    pub wait: Option<u64>,
    /// Host redirect for the edge function, `FROM=TO` (301, path and query kept); repeatable.
    #[arg(long = "redirect", value_name = "FROM=TO")]
    pub redirects: Vec<String>,
    /// Rewrite `/a/b` to `/a/b.html` and `/a/` to `/a/index.html` at the edge.
    #[arg(long)]
    pub pretty_urls: bool,
    /// Single-page app: every path without a file extension serves /index.html.
    #[arg(long, conflicts_with = "pretty_urls")]
    pub spa: bool,
    /// Name of the CloudFront Function holding the edge rules.
    #[arg(long, default_value = "gantry-site-edge")]
    pub function_name: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn pairs(list: &[String], what: &str) -> anyhow::Result<Vec<(String, String)>> {
    list.iter()
        .map(|s| {
            s.split_once('=')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .with_context(|| format!("{what} `{s}` must be written as LEFT=RIGHT"))
        })
        .collect()
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The site, `s3://BUCKET[/PREFIX]`.
    pub target: String,
    /// CloudFront distribution to invalidate for the restored pages.
    #[arg(long)]
    pub distribution: Option<String>,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `gantry site rollback`: restore the previous release from retained content.
pub async fn rollback(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let opts = SyncOptions {
        target: S3Target::parse(&args.target).map_err(anyhow::Error::msg)?,
        rules: HeaderRules::new(Preset::Plain, &[], None)?,
        grace: Grace::default(),
        concurrency: 32,
        dry_run: args.dry_run,
        distribution: args.distribution.clone(),
        max_invalidation_paths: 100,
        wait_invalidation: None,
        edge: None,
    };
    let config = aws::load(None, aws::DEFAULT_MAX_ATTEMPTS).await;
    let store = S3Store::new(&config);
    let cdn = CloudFront::new(&config);
    let cdn_ref: Option<&dyn Cdn> = args.distribution.as_ref().map(|_| &cdn as &dyn Cdn);
    let started = std::time::Instant::now();
    let report = crate::sites::rollback(
        None,
        &opts,
        &store,
        cdn_ref,
        chrono::Utc::now(),
        &LogProgress::default(),
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, started.elapsed());
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run(args: SyncArgs) -> anyhow::Result<ExitCode> {
    let target = S3Target::parse(&args.target).map_err(anyhow::Error::msg)?;
    let rules = HeaderRules::new(
        args.preset,
        &pairs(&args.cache_control, "--cache-control")?,
        Some(&args.extensionless_type),
    )?;
    let redirects = pairs(&args.redirects, "--redirect")?
        .into_iter()
        .map(|(from, to)| HostRedirect {
            from,
            to,
            status: 301,
        })
        .collect();
    let edge = EdgeRules {
        redirects,
        pretty_urls: args.pretty_urls,
        spa: args.spa,
    };
    let opts = SyncOptions {
        target,
        rules,
        grace: Grace {
            days: args.grace_days,
            releases: args.grace_releases,
        },
        concurrency: args.concurrency,
        dry_run: args.dry_run,
        distribution: args.distribution.clone(),
        max_invalidation_paths: args.max_invalidation_paths,
        wait_invalidation: args.wait.map(Duration::from_secs),
        edge: (!edge.is_empty()).then(|| (args.function_name.clone(), edge)),
    };
    let config = aws::load(None, aws::DEFAULT_MAX_ATTEMPTS).await;
    let store = S3Store::new(&config);
    let cdn = CloudFront::new(&config);
    let progress: Box<dyn Progress> =
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) && !args.json {
            Box::new(Bar::default())
        } else {
            Box::new(LogProgress::default())
        };
    let started = std::time::Instant::now();
    let cdn_ref: Option<&dyn Cdn> = args.distribution.as_ref().map(|_| &cdn as &dyn Cdn);
    let report = sync(
        &args.dir,
        &opts,
        &store,
        cdn_ref,
        chrono::Utc::now(),
        progress.as_ref(),
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, started.elapsed());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &SyncReport, took: Duration) {
    if r.dry_run {
        for k in &r.uploads {
            println!("upload  {k}");
        }
        for k in &r.header_updates {
            println!("headers {k}");
        }
        for k in &r.restored {
            println!("restore {k}");
        }
        for k in &r.newly_stale {
            println!("stale   {k} (kept for the grace period)");
        }
        for k in &r.deletes {
            println!("delete  {k}");
        }
        for p in &r.invalidation_paths {
            println!("invalidate {p}");
        }
    }
    println!("{}", r.summary());
    if let Some(e) = &r.edge_function {
        println!("edge function {e}");
    }
    if !r.dry_run {
        println!(
            "release {} in {:.2}s; {} write request(s)",
            r.release,
            took.as_secs_f64(),
            r.write_requests
        );
    }
}

#[derive(Default)]
struct Bar {
    bar: std::sync::Mutex<Option<ProgressBar>>,
}

impl Progress for Bar {
    fn start(&self, phase: &str, total: u64) {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len} {wide_msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(phase.to_owned());
        *self.bar.lock().expect("progress lock") = Some(bar);
    }
    fn advance(&self, key: &str) {
        if let Some(b) = self.bar.lock().expect("progress lock").as_ref() {
            b.set_message(key.to_owned());
            b.inc(1);
        }
    }
    fn finish(&self) {
        if let Some(b) = self.bar.lock().expect("progress lock").take() {
            b.finish_and_clear();
        }
    }
}
