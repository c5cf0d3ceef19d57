//! Static-site sync against moto S3 and CloudFront through the real AWS SDK, with a
//! recording, fault-injecting proxy in front to count requests exactly.

use std::path::Path;
use std::time::Duration;

use aws_sdk_cloudfront::types as cf;
use chrono::Utc;
use gantry::adapters::cloudfront::CloudFront;
use gantry::adapters::s3::S3Store;
use gantry::domain::Grace;
use gantry::plan::edge::EdgeRules;
use gantry::plan::headers::{HeaderRules, IMMUTABLE, REVALIDATE, SHORT};
use gantry::ports::Cdn;
use gantry::sites::sync::LogProgress;
use gantry::sites::{sync, S3Target, SyncOptions, SyncReport};

use crate::s3proxy::{copies, uploads, writes, S3Proxy};

pub fn moto_url() -> String {
    std::env::var("GANTRY_TEST_MOTO_URL").unwrap_or_else(|_| {
        panic!("GANTRY_TEST_MOTO_URL is not set: run `scripts/stack.sh start` and `source .stack/env` (scripts/test.sh does both)")
    })
}

pub async fn aws_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing",
            "c4n4ry-aws-secret",
            None,
            None,
            "test",
        ))
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(8)
                .with_initial_backoff(Duration::from_millis(10)),
        )
        .load()
        .await
}

pub struct Env {
    pub proxy: S3Proxy,
    pub store: S3Store,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
}

impl Env {
    pub async fn new(name: &str) -> Self {
        let moto = moto_url();
        let proxy = S3Proxy::start(&moto).await;
        let config = aws_config(&proxy.url).await;
        let store = S3Store::new(&config).with_multipart_threshold(5 * 1024 * 1024);
        let direct = aws_config(&moto).await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&direct)
                .force_path_style(true)
                .build(),
        );
        let bucket = format!("{name}-{}", std::process::id());
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        proxy.take();
        Self {
            proxy,
            store,
            s3,
            bucket,
        }
    }

    pub fn opts(&self, preset: &str) -> SyncOptions {
        SyncOptions {
            target: S3Target::new(&self.bucket, "site"),
            rules: HeaderRules::new(preset.parse().unwrap(), &[], None).unwrap(),
            grace: Grace::default(),
            concurrency: 8,
            dry_run: false,
            distribution: None,
            max_invalidation_paths: 100,
            wait_invalidation: None,
            edge: None,
        }
    }

    pub async fn sync(
        &self,
        dir: &Path,
        opts: &SyncOptions,
        now: chrono::DateTime<Utc>,
    ) -> SyncReport {
        sync(dir, opts, &self.store, None, now, &LogProgress::default())
            .await
            .expect("sync succeeds")
    }

    pub async fn head(&self, key: &str) -> Option<(String, String)> {
        let out = self
            .s3
            .head_object()
            .bucket(&self.bucket)
            .key(format!("site/{key}"))
            .send()
            .await
            .ok()?;
        Some((
            out.content_type().unwrap_or("").to_owned(),
            out.cache_control().unwrap_or("").to_owned(),
        ))
    }
}

pub fn write_tree(dir: &Path, files: &[(&str, &str)]) {
    for (k, body) in files {
        let p = dir.join(k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// A small Next.js-style static export.
pub fn next_export(dir: &Path, version: &str) {
    write_tree(
        dir,
        &[
            ("index.html", &format!("<html>home {version}</html>")),
            ("index.txt", "rsc home"),
            ("projects/12.html", "<html>project 12</html>"),
            ("projects/12.txt", "rsc 12"),
            ("projects/13.html", "<html>project 13</html>"),
            ("projects/13.txt", "rsc 13"),
            ("docs/index.html", "<html>docs</html>"),
            ("_next/static/chunks/app-3f2a.js", "console.log(1)"),
            ("_next/static/css/site-91ab.css", "body{}"),
            ("favicon.ico", "ico"),
            (
                ".well-known/security.txt",
                "Contact: mailto:sec@example.com",
            ),
            ("media/hero image ü.webp", "webp"),
        ],
    );
}

/// The next build of the export: new content, and its hashed chunk renamed.
fn next_build_with_new_chunk(dir: &Path, version: &str) {
    next_export(dir, version);
    std::fs::rename(
        dir.join("_next/static/chunks/app-3f2a.js"),
        dir.join("_next/static/chunks/app-77c0.js"),
    )
    .unwrap();
}

#[tokio::test]
async fn every_file_type_gets_its_headers() {
    let env = Env::new("types").await;
    let dir = tempfile::tempdir().unwrap();
    let types = [
        ("index.html", "text/html; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("mod.mjs", "text/javascript; charset=utf-8"),
        ("site.css", "text/css; charset=utf-8"),
        ("data.json", "application/json"),
        ("robots.txt", "text/plain; charset=utf-8"),
        ("app.js.map", "application/json"),
        ("logo.svg", "image/svg+xml"),
        ("favicon.ico", "image/x-icon"),
        ("a.png", "image/png"),
        ("b.jpg", "image/jpeg"),
        ("c.webp", "image/webp"),
        ("d.avif", "image/avif"),
        ("font.woff2", "font/woff2"),
        ("app.wasm", "application/wasm"),
        ("site.webmanifest", "application/manifest+json"),
        ("sitemap.xml", "application/xml"),
        ("_next/static/x.js", "text/javascript; charset=utf-8"),
    ];
    let files: Vec<(&str, &str)> = types.iter().map(|(k, _)| (*k, "body")).collect();
    write_tree(dir.path(), &files);
    let report = env.sync(dir.path(), &env.opts("nextjs"), Utc::now()).await;
    assert_eq!(report.uploads.len(), types.len());
    for (key, ct) in types {
        let (got_ct, cc) = env
            .head(key)
            .await
            .unwrap_or_else(|| panic!("{key} uploaded"));
        assert_eq!(got_ct, ct, "{key}");
        let want_cc = if key.starts_with("_next/static/") {
            IMMUTABLE
        } else if key.ends_with(".html") || key.ends_with(".txt") {
            REVALIDATE
        } else {
            SHORT
        };
        assert_eq!(cc, want_cc, "{key}");
    }
}

#[tokio::test]
async fn identical_tree_with_fresh_mtimes_makes_no_writes() {
    let env = Env::new("resync").await;
    let a = tempfile::tempdir().unwrap();
    next_export(a.path(), "v1");
    let first = env.sync(a.path(), &env.opts("nextjs"), Utc::now()).await;
    assert_eq!(first.uploads.len(), 12);
    // Assets are all written before the first document.
    let seen = env.proxy.take();
    let ups = uploads(&seen);
    let first_doc = ups
        .iter()
        .position(|s| s.path.ends_with(".html") || s.path.ends_with(".txt"))
        .unwrap();
    let last_asset = ups
        .iter()
        .rposition(|s| {
            !(s.path.ends_with(".html") || s.path.ends_with(".txt") || s.path.contains("/.gantry/"))
        })
        .unwrap();
    assert!(last_asset < first_doc, "assets before documents: {ups:?}");
    assert!(
        ups.last().unwrap().path.ends_with(".gantry/manifest.json"),
        "manifest last"
    );
    // A fresh copy (new mtimes) of the same tree.
    std::thread::sleep(Duration::from_millis(1100));
    let b = tempfile::tempdir().unwrap();
    copy_tree(a.path(), b.path());
    let again = env.sync(b.path(), &env.opts("nextjs"), Utc::now()).await;
    assert_eq!(
        (
            again.uploads.len(),
            again.header_updates.len(),
            again.unchanged
        ),
        (0, 0, 12)
    );
    let seen = env.proxy.take();
    assert!(
        writes(&seen).is_empty(),
        "no PUT/COPY/DELETE: {:?}",
        writes(&seen)
    );
}

#[tokio::test]
async fn header_only_change_copies_in_place_without_upload() {
    let env = Env::new("headers").await;
    let dir = tempfile::tempdir().unwrap();
    next_export(dir.path(), "v1");
    env.sync(dir.path(), &env.opts("nextjs"), Utc::now()).await;
    env.proxy.take();
    let mut opts = env.opts("nextjs");
    opts.rules = HeaderRules::new(
        gantry::domain::Preset::Nextjs,
        &[("media/**".into(), "public, max-age=86400".into())],
        None,
    )
    .unwrap();
    let r = env.sync(dir.path(), &opts, Utc::now()).await;
    assert_eq!(r.uploads.len(), 0);
    assert_eq!(
        r.header_updates,
        vec!["media/hero image ü.webp".to_string()]
    );
    let seen = env.proxy.take();
    assert_eq!(copies(&seen).len(), 1, "{seen:?}");
    assert!(
        uploads(&seen).iter().all(|s| s.path.contains("/.gantry/")),
        "only Gantry's manifest is written: {seen:?}"
    );
    assert_eq!(
        env.head("media/hero image ü.webp").await.unwrap().1,
        "public, max-age=86400"
    );
}

#[tokio::test]
async fn stale_hashed_assets_survive_until_the_grace_period_passes() {
    let env = Env::new("grace").await;
    let t0 = Utc::now();
    let v1 = tempfile::tempdir().unwrap();
    next_export(v1.path(), "v1");
    env.sync(v1.path(), &env.opts("nextjs"), t0).await;
    let v2 = tempfile::tempdir().unwrap();
    next_build_with_new_chunk(v2.path(), "v2");
    let r = env.sync(v2.path(), &env.opts("nextjs"), t0).await;
    assert_eq!(
        r.newly_stale,
        vec!["_next/static/chunks/app-3f2a.js".to_string()]
    );
    assert!(
        env.head("_next/static/chunks/app-3f2a.js").await.is_some(),
        "kept for cached pages"
    );
    // More releases, but within the 7 days: kept.
    for (i, v) in ["v3", "v4", "v5"].iter().enumerate() {
        write_tree(
            v2.path(),
            &[("index.html", &format!("<html>home {v}</html>"))],
        );
        let r = env
            .sync(
                v2.path(),
                &env.opts("nextjs"),
                t0 + chrono::Duration::days(i as i64),
            )
            .await;
        assert!(r.deletes.is_empty());
    }
    assert!(env.head("_next/static/chunks/app-3f2a.js").await.is_some());
    // Eight days on, with three releases since: removed by this sync.
    let r = env
        .sync(
            v2.path(),
            &env.opts("nextjs"),
            t0 + chrono::Duration::days(8),
        )
        .await;
    // Retained copies of overwritten pages (under .gantry/) expire along with it.
    let site_deletes: Vec<_> = r
        .deletes
        .iter()
        .filter(|k| !k.starts_with(".gantry/"))
        .collect();
    assert_eq!(site_deletes, ["_next/static/chunks/app-3f2a.js"]);
    assert!(env.head("_next/static/chunks/app-3f2a.js").await.is_none());
    assert!(env.head("_next/static/chunks/app-77c0.js").await.is_some());
}

#[tokio::test]
async fn slowdown_responses_are_retried_and_the_sync_completes() {
    let env = Env::new("slowdown").await;
    let dir = tempfile::tempdir().unwrap();
    next_export(dir.path(), "v1");
    env.proxy.fail_next_puts(6);
    let r = env.sync(dir.path(), &env.opts("nextjs"), Utc::now()).await;
    assert_eq!(r.uploads.len(), 12);
    let seen = env.proxy.take();
    assert_eq!(
        seen.iter().filter(|s| s.status == 503).count(),
        6,
        "503s were injected"
    );
    for k in [
        "index.html",
        "projects/12.txt",
        "media/hero image ü.webp",
        ".well-known/security.txt",
    ] {
        assert!(env.head(k).await.is_some(), "{k}");
    }
    // Nothing left to do afterwards.
    let again = env.sync(dir.path(), &env.opts("nextjs"), Utc::now()).await;
    assert_eq!(again.uploads.len() + again.header_updates.len(), 0);
}

#[tokio::test]
async fn large_files_go_multipart() {
    let env = Env::new("multipart").await;
    let dir = tempfile::tempdir().unwrap();
    let big: String = "0123456789abcdef".repeat(6 * 1024 * 1024 / 16 + 100);
    write_tree(
        dir.path(),
        &[("video/intro.mp4", &big), ("index.html", "x")],
    );
    env.sync(dir.path(), &env.opts("plain"), Utc::now()).await;
    let seen = env.proxy.take();
    assert!(
        seen.iter()
            .any(|s| s.method == "POST" && s.query.contains("uploads")),
        "multipart started: {seen:?}"
    );
    assert!(
        seen.iter()
            .filter(|s| s.query.contains("partNumber="))
            .count()
            >= 1
    );
    let head = env
        .s3
        .head_object()
        .bucket(&env.bucket)
        .key("site/video/intro.mp4")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(big.len() as i64));
    let again = env.sync(dir.path(), &env.opts("plain"), Utc::now()).await;
    assert_eq!(
        again.uploads.len(),
        0,
        "the multipart ETag is recorded, not mistaken for an MD5"
    );
}

async fn distribution(config: &aws_config::SdkConfig, bucket: &str) -> String {
    let client = aws_sdk_cloudfront::Client::new(config);
    let origin = cf::Origin::builder()
        .id("s3")
        .domain_name(format!("{bucket}.s3.amazonaws.com"))
        .s3_origin_config(
            cf::S3OriginConfig::builder()
                .origin_access_identity("")
                .build(),
        )
        .build()
        .unwrap();
    let behaviour = cf::DefaultCacheBehavior::builder()
        .target_origin_id("s3")
        .viewer_protocol_policy(cf::ViewerProtocolPolicy::RedirectToHttps)
        // The managed CachingOptimized policy.
        .cache_policy_id("658327ea-f89d-4fab-a63d-7e88639e58f6")
        .trusted_signers(
            cf::TrustedSigners::builder()
                .enabled(false)
                .quantity(0)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let config = cf::DistributionConfig::builder()
        .caller_reference(format!("test-{bucket}"))
        .comment("gantry test")
        .enabled(true)
        .origins(
            cf::Origins::builder()
                .quantity(1)
                .items(origin)
                .build()
                .unwrap(),
        )
        .default_cache_behavior(behaviour)
        .build()
        .unwrap();
    let out = client
        .create_distribution()
        .distribution_config(config)
        .send()
        .await
        .unwrap();
    out.distribution().unwrap().id().to_owned()
}

#[tokio::test]
async fn one_changed_page_uploads_and_invalidates_only_that_page() {
    let env = Env::new("onepage").await;
    let config = aws_config(&moto_url()).await;
    let cdn = CloudFront::new(&config);
    let dist = distribution(&config, &env.bucket).await;
    let dir = tempfile::tempdir().unwrap();
    next_export(dir.path(), "v1");
    let mut opts = env.opts("nextjs");
    opts.distribution = Some(dist.clone());
    let first = sync(
        dir.path(),
        &opts,
        &env.store,
        Some(&cdn as &dyn Cdn),
        Utc::now(),
        &LogProgress::default(),
    )
    .await
    .unwrap();
    assert!(
        first.invalidation_id.is_none(),
        "a first upload replaces nothing cached: {first:?}"
    );
    env.proxy.take();
    write_tree(
        dir.path(),
        &[
            ("projects/12.html", "<html>project 12, edited</html>"),
            ("projects/12.txt", "rsc 12 edited"),
        ],
    );
    let r = sync(
        dir.path(),
        &opts,
        &env.store,
        Some(&cdn as &dyn Cdn),
        Utc::now(),
        &LogProgress::default(),
    )
    .await
    .unwrap();
    let mut ups = r.uploads.clone();
    ups.sort();
    assert_eq!(ups, ["projects/12.html", "projects/12.txt"]);
    let seen = env.proxy.take();
    let body_puts: Vec<_> = uploads(&seen)
        .into_iter()
        .filter(|s| !s.path.contains("/.gantry/"))
        .collect();
    assert_eq!(body_puts.len(), 2, "{body_puts:?}");
    assert_eq!(
        r.invalidation_paths,
        ["/projects/12", "/projects/12.html", "/projects/12.txt"]
    );
    let client = aws_sdk_cloudfront::Client::new(&config);
    let inv = client
        .get_invalidation()
        .distribution_id(&dist)
        .id(r.invalidation_id.clone().unwrap())
        .send()
        .await
        .unwrap();
    let paths = inv
        .invalidation()
        .unwrap()
        .invalidation_batch()
        .unwrap()
        .paths()
        .unwrap()
        .items()
        .to_vec();
    assert_eq!(
        paths,
        ["/projects/12", "/projects/12.html", "/projects/12.txt"]
    );
    // Nothing changed: no invalidation call at all.
    let none = sync(
        dir.path(),
        &opts,
        &env.store,
        Some(&cdn as &dyn Cdn),
        Utc::now(),
        &LogProgress::default(),
    )
    .await
    .unwrap();
    assert!(none.invalidation_id.is_none() && none.invalidation_paths.is_empty());
}

/// Faults on S3 (connections reset before and after the PUT reached it, SlowDown, added
/// latency) are absorbed; an invalidation CloudFront keeps refusing fails the sync, and the
/// paths it owed are recorded with the release, so the next sync invalidates them even though
/// no file changed since: no site is left stale behind a "success".
#[tokio::test]
async fn a_failed_invalidation_is_owed_until_a_later_sync_makes_it() {
    use crate::s3proxy::Fault;
    let env = Env::new("owed").await;
    let direct = aws_config(&moto_url()).await;
    let dist = distribution(&direct, &env.bucket).await;
    let cdn = CloudFront::new(&aws_config(&env.proxy.url).await);
    let dir = tempfile::tempdir().unwrap();
    next_export(dir.path(), "v1");
    let mut opts = env.opts("nextjs");
    opts.distribution = Some(dist.clone());
    let run = |opts: SyncOptions| {
        let (dir, env, cdn) = (dir.path().to_owned(), &env, &cdn);
        async move {
            sync(
                &dir,
                &opts,
                &env.store,
                Some(cdn as &dyn Cdn),
                Utc::now(),
                &LogProgress::default(),
            )
            .await
        }
    };
    env.proxy.inject(Fault::reset_before("PUT /", 2));
    env.proxy.inject(Fault::reset_after("PUT /", 2));
    env.proxy.inject(Fault::slow_down("PUT /", 2));
    env.proxy.inject(Fault::internal_xml("PUT /", 1));
    env.proxy
        .inject(Fault::delay("PUT /", 3, Duration::from_millis(200)));
    run(opts.clone()).await.expect("S3 faults are absorbed");
    let seen = env.proxy.take();
    assert_eq!(
        seen.iter().filter(|s| s.status == 0).count(),
        4,
        "resets met"
    );
    write_tree(
        dir.path(),
        &[("projects/12.html", "<html>project 12, edited</html>")],
    );
    // CloudFront refuses more often than the SDK tries.
    env.proxy
        .inject(Fault::cloudfront_throttling("POST /invalidation", 100));
    let err = run(opts.clone()).await.expect_err("the invalidation fails");
    assert!(err.to_string().contains("Throttling"), "{err}");
    let manifest: serde_json::Value = serde_json::from_slice(
        &env.s3
            .get_object()
            .bucket(&env.bucket)
            .key("site/.gantry/manifest.json")
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes(),
    )
    .unwrap();
    assert_eq!(
        manifest["pendingInvalidation"],
        serde_json::json!(["projects/12.html"]),
        "{manifest:#}"
    );
    env.proxy.take();
    env.proxy.clear_faults();
    // Nothing changed since, yet what was owed is invalidated now, and then no longer owed.
    let r = run(opts.clone()).await.unwrap();
    assert!(r.uploads.is_empty(), "{r:?}");
    assert!(r.invalidation_id.is_some(), "{r:?}");
    assert!(r
        .invalidation_paths
        .contains(&"/projects/12.html".to_string()));
    let again = run(opts.clone()).await.unwrap();
    assert!(again.invalidation_id.is_none(), "{again:?}");
}

#[tokio::test]
async fn edge_function_is_published_and_associated_only_when_changed() {
    let config = aws_config(&moto_url()).await;
    let env = Env::new("edge").await;
    let cdn = CloudFront::new(&config);
    let dist = distribution(&config, &env.bucket).await;
    let dir = tempfile::tempdir().unwrap();
    next_export(dir.path(), "v1");
    let mut opts = env.opts("nextjs");
    opts.distribution = Some(dist.clone());
    let name = format!("gantry-test-{}", std::process::id());
    let rules = EdgeRules {
        redirects: vec![gantry::domain::HostRedirect {
            from: "www.example.com".into(),
            to: "example.com".into(),
            status: 301,
        }],
        pretty_urls: true,
        spa: false,
    };
    opts.edge = Some((name.clone(), rules.clone()));
    let run = |opts: SyncOptions| {
        let (dir, env, cdn) = (dir.path().to_path_buf(), &env, &cdn);
        async move {
            sync(
                &dir,
                &opts,
                &env.store,
                Some(cdn as &dyn Cdn),
                Utc::now(),
                &LogProgress::default(),
            )
            .await
            .unwrap()
        }
    };
    let r1 = run(opts.clone()).await;
    assert!(
        r1.edge_function.as_deref().unwrap().contains("created"),
        "{r1:?}"
    );
    let client = aws_sdk_cloudfront::Client::new(&config);
    let live = client
        .get_function()
        .name(&name)
        .stage(cf::FunctionStage::Live)
        .send()
        .await
        .unwrap();
    assert_eq!(
        live.function_code().unwrap().as_ref(),
        gantry::plan::edge::function_code(&rules).as_bytes()
    );
    let dc = client
        .get_distribution_config()
        .id(&dist)
        .send()
        .await
        .unwrap();
    let assoc = dc
        .distribution_config()
        .unwrap()
        .default_cache_behavior()
        .unwrap()
        .function_associations()
        .unwrap()
        .items()
        .to_vec();
    assert_eq!(assoc.len(), 1);
    assert_eq!(assoc[0].event_type, cf::EventType::ViewerRequest);
    assert!(assoc[0].function_arn.contains(&name));
    let r2 = run(opts.clone()).await;
    assert!(
        r2.edge_function.as_deref().unwrap().contains("unchanged"),
        "{r2:?}"
    );
    let mut changed = opts.clone();
    changed.edge = Some((
        name.clone(),
        EdgeRules {
            pretty_urls: false,
            ..rules
        },
    ));
    let r3 = run(changed).await;
    assert!(
        r3.edge_function.as_deref().unwrap().contains("updated"),
        "{r3:?}"
    );
}

#[tokio::test]
async fn dry_run_prints_the_plan_and_changes_nothing() {
    let env = Env::new("dryrun").await;
    let dir = tempfile::tempdir().unwrap();
    next_export(dir.path(), "v1");
    let out = crate::support::gantry_cli()
        .args(["site", "sync", "--preset", "nextjs", "--dry-run"])
        .arg(dir.path())
        .arg(format!("s3://{}/site", env.bucket))
        .env("AWS_ENDPOINT_URL", &env.proxy.url)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("upload  _next/static/chunks/app-3f2a.js"),
        "{stdout}"
    );
    assert!(stdout.contains("would upload 12"), "{stdout}");
    let seen = env.proxy.take();
    assert!(writes(&seen).is_empty(), "{seen:?}");
    assert!(!seen.is_empty(), "the dry run read the bucket");
    let listed = env
        .s3
        .list_objects_v2()
        .bucket(&env.bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0));
    // The same command without --dry-run does the work.
    let out = crate::support::gantry_cli()
        .args(["site", "sync", "--preset", "nextjs"])
        .arg(dir.path())
        .arg(format!("s3://{}/site", env.bucket))
        .env("AWS_ENDPOINT_URL", &env.proxy.url)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.head("projects/12.txt").await.unwrap().1, REVALIDATE);
}

#[tokio::test]
async fn a_deployment_builds_and_syncs_its_site() {
    use crate::support::{push_body, GitRepo, TestApp};
    let env = Env::new("deploy").await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let sha = repo.commit(
        &[
            ("src/index.html", "<h1>hello</h1>"),
            ("src/app-1a2b.js", "x"),
        ],
        "site",
    );
    let manifest = format!(
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: web\nspec:\n  source:\n    repo: acme/web\n    url: {}\n  build:\n    commands: [\"mkdir -p out/_next/static && cp src/index.html out/ && cp src/app-1a2b.js out/_next/static/\"]\n  sites:\n    - name: www\n      dir: out\n      bucket: {}\n      prefix: live\n      preset: nextjs\n",
        repo.path.display(),
        env.bucket
    );
    let app = TestApp::start_with(
        &[("web.yaml", manifest)],
        &[("GANTRY_AWS_ENDPOINT_URL", env.proxy.url.as_str())],
    )
    .await;
    let (status, r) = app
        .hook(
            "push",
            "site-1",
            &push_body("acme/web", "refs/heads/main", &sha),
        )
        .await;
    assert_eq!(status, 202, "{r}");
    app.wait_idle(Duration::from_secs(60)).await;
    let d = app
        .api(&format!("/api/v1/deployments/{}", r["deployments"][0]))
        .await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let steps: Vec<&str> = d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["verify", "fetch_source", "build", "sync_sites", "report"]
    );
    let head = env
        .s3
        .head_object()
        .bucket(&env.bucket)
        .key("live/_next/static/app-1a2b.js")
        .send()
        .await
        .unwrap();
    assert_eq!(head.cache_control(), Some(IMMUTABLE));
    let head = env
        .s3
        .head_object()
        .bucket(&env.bucket)
        .key("live/index.html")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("text/html; charset=utf-8"));
    let releases = app.store().releases("web", 5).await.unwrap();
    assert_eq!(
        releases[0].sites["www"],
        format!("s3://{}/live/#1", env.bucket)
    );
    app.finish().await;
}

#[tokio::test]
async fn rollback_restores_the_previous_release_without_uploading() {
    let env = Env::new("rollback").await;
    let t0 = Utc::now();
    let v1 = tempfile::tempdir().unwrap();
    next_export(v1.path(), "v1");
    env.sync(v1.path(), &env.opts("nextjs"), t0).await;
    let v2 = tempfile::tempdir().unwrap();
    next_build_with_new_chunk(v2.path(), "v2");
    let r2 = env.sync(v2.path(), &env.opts("nextjs"), t0).await;
    assert_eq!(
        r2.retained,
        vec!["index.html".to_string()],
        "the overwritten page is kept"
    );
    env.proxy.take();
    let body = |key: &'static str| {
        let s3 = env.s3.clone();
        let bucket = env.bucket.clone();
        async move {
            let o = s3
                .get_object()
                .bucket(bucket)
                .key(format!("site/{key}"))
                .send()
                .await
                .unwrap();
            String::from_utf8(o.body.collect().await.unwrap().into_bytes().to_vec()).unwrap()
        }
    };
    assert_eq!(body("index.html").await, "<html>home v2</html>");
    let r = gantry::sites::rollback(
        None,
        &env.opts("nextjs"),
        &env.store,
        None,
        t0,
        &LogProgress::default(),
    )
    .await
    .unwrap();
    assert!(r.uploads.is_empty(), "nothing rebuilt or uploaded: {r:?}");
    assert_eq!(r.restored, vec!["index.html".to_string()]);
    let seen = env.proxy.take();
    assert!(
        uploads(&seen)
            .iter()
            .all(|s| s.path.ends_with(".gantry/manifest.json")),
        "{seen:?}"
    );
    assert_eq!(body("index.html").await, "<html>home v1</html>");
    assert_eq!(env.head("index.html").await.unwrap().1, REVALIDATE);
    assert!(env.head("_next/static/chunks/app-3f2a.js").await.is_some());
    // Syncing v1 again now has nothing to do: the bucket is v1.
    let again = env.sync(v1.path(), &env.opts("nextjs"), t0).await;
    assert_eq!(
        again.uploads.len() + again.header_updates.len(),
        0,
        "{again:?}"
    );
}

#[tokio::test]
async fn a_bucket_written_by_another_tool_is_adopted_without_re_uploading() {
    let env = Env::new("foreign").await;
    let dir = tempfile::tempdir().unwrap();
    next_export(dir.path(), "v1");
    // Another tool (as `aws s3 sync` does) uploaded the same files, single-part, no headers.
    for (key, body) in [
        ("index.html", "<html>home v1</html>"),
        ("_next/static/chunks/app-3f2a.js", "console.log(1)"),
        ("favicon.ico", "ico"),
    ] {
        env.s3
            .put_object()
            .bucket(&env.bucket)
            .key(format!("site/{key}"))
            .body(aws_sdk_s3::primitives::ByteStream::from(
                body.as_bytes().to_vec(),
            ))
            .send()
            .await
            .unwrap();
    }
    // And one file with different content under the same name.
    env.s3
        .put_object()
        .bucket(&env.bucket)
        .key("site/projects/12.html")
        .body(aws_sdk_s3::primitives::ByteStream::from(b"old".to_vec()))
        .send()
        .await
        .unwrap();
    env.proxy.take();
    let r = env.sync(dir.path(), &env.opts("nextjs"), Utc::now()).await;
    let mut adopted = r.header_updates.clone();
    adopted.sort();
    assert_eq!(
        adopted,
        [
            "_next/static/chunks/app-3f2a.js",
            "favicon.ico",
            "index.html"
        ],
        "equal by MD5 ETag: headers only"
    );
    assert!(r.uploads.contains(&"projects/12.html".to_string()));
    assert_eq!(r.uploads.len(), 12 - 3);
    assert_eq!(
        env.head("_next/static/chunks/app-3f2a.js").await.unwrap().1,
        IMMUTABLE
    );
}

#[tokio::test]
async fn a_throttled_site_sync_is_retried_and_records_one_release() {
    use crate::support::{push_body, GitRepo, TestApp};
    let env = Env::new("slowdown").await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let sha = repo.commit(
        &[("out/index.html", "<h1>hi</h1>"), ("out/a.css", "b{}")],
        "site",
    );
    let manifest = format!(
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: web\nspec:\n  source:\n    repo: acme/web\n    url: {}\n  sites:\n    - name: www\n      dir: out\n      bucket: {}\n      prefix: live\n",
        repo.path.display(),
        env.bucket
    );
    let app = TestApp::start_with(
        &[("web.yaml", manifest)],
        &[
            ("GANTRY_AWS_ENDPOINT_URL", env.proxy.url.as_str()),
            ("GANTRY_AWS_MAX_ATTEMPTS", "2"),
            ("GANTRY_RETRY_BASE", "50ms"),
            ("GANTRY_RETRY_CAP", "200ms"),
        ],
    )
    .await;
    // More SlowDowns than the SDK's two attempts per call absorb.
    env.proxy.fail_next_puts(5);
    let (status, r) = app
        .hook(
            "push",
            "slow-1",
            &push_body("acme/web", "refs/heads/main", &sha),
        )
        .await;
    assert_eq!(status, 202, "{r}");
    app.wait_idle(Duration::from_secs(60)).await;
    let d = app
        .api(&format!("/api/v1/deployments/{}", r["deployments"][0]))
        .await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let step = d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "sync_sites")
        .unwrap();
    assert!(step["attempts"].as_u64().unwrap() >= 2, "{step:#}");
    let log = step["log"].as_str().unwrap();
    assert!(log.contains("failed with a transient error"), "{log}");
    assert!(log.contains("SlowDown"), "{log}");
    let seen = env.proxy.take();
    assert_eq!(seen.iter().filter(|s| s.status == 503).count(), 5);
    // Every file is there, and the failed attempts left no release behind: this is #1.
    for key in ["live/index.html", "live/a.css"] {
        env.s3
            .head_object()
            .bucket(&env.bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {e}"));
    }
    let releases = app.store().releases("web", 5).await.unwrap();
    assert_eq!(
        releases[0].sites["www"],
        format!("s3://{}/live/#1", env.bucket)
    );
    app.finish().await;
}
