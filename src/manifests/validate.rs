//! Semantic checks of a parsed App manifest: what serde's types cannot express.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use globset::Glob;

use super::{ManifestError, ManifestSet};
use crate::domain::{is_dns_label, AppManifest, API_VERSION};

/// One problem at one field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(
        path: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let hint: String = hint.into();
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
            hint: (!hint.is_empty()).then_some(hint),
        });
    }
}

pub fn app(m: &AppManifest, manifest_dir: &Path) -> Vec<Problem> {
    let mut p = Problems::default();
    if m.api_version != API_VERSION {
        p.add(
            "apiVersion",
            format!("unsupported apiVersion `{}`", m.api_version),
            format!("use `apiVersion: {API_VERSION}`"),
        );
    }
    if !is_dns_label(&m.metadata.name) {
        p.add(
            "metadata.name",
            format!("`{}` is not a valid app name", m.metadata.name),
            "use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit",
        );
    }
    let s = &m.spec;
    if !is_dns_label(&s.environment) {
        p.add(
            "spec.environment",
            format!("`{}` is not a valid environment name", s.environment),
            "use lowercase letters, digits and '-', e.g. `production`",
        );
    }
    source(&mut p, m);
    if let Err(problems) = crate::plan::window::parse(&s.windows) {
        for (path, message) in problems {
            p.add(
                path,
                message,
                "a window is `{schedule: \"0 9 * * 1-5\", duration: 8h}` (see docs/environments.md)",
            );
        }
    }
    for (path, message) in s.approvals.iter().flat_map(crate::plan::gate::problems) {
        p.add(
            path,
            message,
            "e.g. `approvals: {required: 1, from: [\"discord-role:ROLE_ID\"], timeout: 24h}`",
        );
    }
    if let Some(b) = &s.build {
        if b.commands.is_empty() || b.commands.iter().any(|c| c.trim().is_empty()) {
            p.add(
                "spec.build.commands",
                "build commands must be non-empty",
                "list shell commands, e.g. `- npm ci && npm run build`, or remove `build`",
            );
        }
        if let Some(w) = &b.workdir {
            if !is_relative_inside(w) {
                p.add(
                    "spec.build.workdir",
                    format!("`{w}` must be a relative path inside the checkout"),
                    "drop leading `/` and `..`",
                );
            }
        }
        for k in b.env.keys() {
            if !is_env_name(k) {
                p.add(
                    format!("spec.build.env.{k}"),
                    format!("`{k}` is not a valid variable name"),
                    "use letters, digits and '_', not starting with a digit",
                );
            }
        }
        for (i, k) in b.pass_env.iter().enumerate() {
            if !is_env_name(k) {
                p.add(
                    format!("spec.build.passEnv[{i}]"),
                    format!("`{k}` is not a valid variable name"),
                    "",
                );
            }
        }
        caches(&mut p, &b.caches);
    }
    let mut image_names = BTreeSet::new();
    for (i, img) in s.images.iter().enumerate() {
        let at = format!("spec.images[{i}]");
        if !image_names.insert(img.name.as_str()) {
            p.add(
                format!("{at}.name"),
                format!("image `{}` is declared twice", img.name),
                "give each image a unique name",
            );
        }
        if img.repository.trim().is_empty() || img.repository.contains(char::is_whitespace) {
            p.add(
                format!("{at}.repository"),
                "repository must be a registry path without spaces",
                "e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com/api`",
            );
        }
        if !is_relative_inside(&img.context) {
            p.add(
                format!("{at}.context"),
                "context must be a relative path inside the checkout",
                "",
            );
        }
        if let Err(e) = crate::domain::ImageRef::parse(&img.repository) {
            p.add(
                format!("{at}.repository"),
                e.to_string(),
                "e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com/api`",
            );
        } else if img.repository.contains('@')
            || img
                .repository
                .rsplit('/')
                .next()
                .is_some_and(|n| n.contains(':'))
        {
            p.add(
                format!("{at}.repository"),
                "repository must not name a tag or digest",
                "Gantry tags images with the git sha; use `tag:` for a moving tag",
            );
        }
        match img.builder_kind() {
            crate::domain::BuilderKind::Layer => {
                match &img.base {
                    None => p.add(
                        format!("{at}.base"),
                        "the `layer` builder needs a base image",
                        "e.g. `base: python:3.12-slim`, or use `builder: buildah` with a Dockerfile",
                    ),
                    Some(b) => {
                        if let Err(e) = crate::domain::ImageRef::parse(b) {
                            p.add(format!("{at}.base"), e.to_string(), "");
                        }
                    }
                }
                if img.dockerfile.is_some() {
                    p.add(
                        format!("{at}.dockerfile"),
                        "the `layer` builder does not read a Dockerfile",
                        "remove `dockerfile`, or use `builder: buildah` or `kaniko`",
                    );
                }
            }
            _ => {
                if !is_relative_inside(img.dockerfile_path()) {
                    p.add(
                        format!("{at}.dockerfile"),
                        "dockerfile must be a relative path inside the context",
                        "",
                    );
                }
            }
        }
        if let Some(w) = &img.workdir {
            if !w.starts_with('/') {
                p.add(
                    format!("{at}.workdir"),
                    "workdir must be an absolute path in the image",
                    "e.g. `/app`",
                );
            }
        }
        if img.builder_kind() == crate::domain::BuilderKind::Layer && !img.build_args.is_empty() {
            p.add(
                format!("{at}.buildArgs"),
                "buildArgs apply to Dockerfile builds; the layer builder runs no Dockerfile",
                "remove buildArgs, or set `builder: buildah` (or kaniko) with a Dockerfile",
            );
        }
        if let Some(t) = &img.tag {
            if !crate::domain::valid_tag(t) {
                p.add(
                    format!("{at}.tag"),
                    format!("`{t}` is not a valid tag"),
                    "letters, digits, `_`, `.` and `-`, at most 128 characters",
                );
            }
        }
        for (j, g) in img.exclude.iter().enumerate() {
            if globset::Glob::new(g).is_err() {
                p.add(
                    format!("{at}.exclude[{j}]"),
                    format!("`{g}` is not a valid glob"),
                    "",
                );
            }
        }
    }
    let mut service_names = BTreeSet::new();
    for (i, svc) in s.services.iter().enumerate() {
        let at = format!("spec.services[{i}]");
        if !service_names.insert(svc.name.as_str()) {
            p.add(
                format!("{at}.name"),
                format!("service `{}` is declared twice", svc.name),
                "give each service a unique name",
            );
        }
        if svc.cluster.trim().is_empty() {
            p.add(
                format!("{at}.cluster"),
                "cluster must not be empty",
                "name the ECS cluster or give its ARN",
            );
        }
        service_discovery(&mut p, &at, svc);
        let td = manifest_dir.join(&svc.task_definition);
        if let Some(text) = &svc.task_definition_content {
            // Rendered by a chart.
            task_definition_text(&mut p, &at, &svc.task_definition, text, svc);
        } else if !td.is_file() {
            p.add(
                format!("{at}.taskDefinition"),
                format!("task definition file `{}` does not exist", td.display()),
                "give a path relative to this manifest's directory",
            );
        } else {
            task_definition(&mut p, &at, &td, svc);
        }
        for (container, image) in &svc.containers {
            if !image_names.contains(image.as_str()) {
                p.add(
                    format!("{at}.containers.{container}"),
                    format!("image `{image}` is not declared in spec.images"),
                    format!(
                        "declare it under spec.images or use one of: {}",
                        join(&image_names)
                    ),
                );
            }
        }
        if let Some(n) = &svc.network {
            if n.subnets.is_empty() {
                p.add(
                    format!("{at}.network.subnets"),
                    "a Fargate service needs at least one subnet",
                    "",
                );
            }
        }
    }
    jobs(&mut p, m, manifest_dir, &image_names);
    let mut site_names = BTreeSet::new();
    for (i, site) in s.sites.iter().enumerate() {
        let at = format!("spec.sites[{i}]");
        if !site_names.insert(site.name.as_str()) {
            p.add(
                format!("{at}.name"),
                format!("site `{}` is declared twice", site.name),
                "give each site a unique name",
            );
        }
        if !is_bucket_name(&site.bucket) {
            p.add(
                format!("{at}.bucket"),
                format!("`{}` is not a valid S3 bucket name", site.bucket),
                "3-63 lowercase letters, digits, '.' and '-'",
            );
        }
        if !is_relative_inside(&site.dir) {
            p.add(
                format!("{at}.dir"),
                "dir must be a relative path inside the checkout",
                "e.g. `out` for a Next.js static export",
            );
        }
        for (j, rule) in site.cache_control.iter().enumerate() {
            if Glob::new(&rule.glob).is_err() {
                p.add(
                    format!("{at}.cacheControl[{j}].glob"),
                    format!("`{}` is not a valid glob", rule.glob),
                    "e.g. `_next/static/**`",
                );
            }
        }
        if site.spa && site.pretty_urls {
            p.add(
                format!("{at}.spa"),
                "spa and prettyUrls are exclusive: a single-page app serves /index.html for every route",
                "keep `spa: true` for a client-routed app, `prettyUrls: true` for a static export",
            );
        }
        if (!site.redirects.is_empty() || site.pretty_urls || site.spa)
            && site.distribution.is_none()
        {
            p.add(
                format!("{at}.distribution"),
                "redirects, prettyUrls and spa run as a CloudFront Function, which needs a distribution",
                "set `distribution:` to the CloudFront distribution id serving this bucket",
            );
        }
        if site.grace_days.is_some_and(|d| d < 0) {
            p.add(
                format!("{at}.graceDays"),
                "graceDays must not be negative",
                "e.g. `7`",
            );
        }
        for (j, r) in site.redirects.iter().enumerate() {
            if !matches!(r.status, 301 | 302 | 307 | 308) {
                p.add(
                    format!("{at}.redirects[{j}].status"),
                    format!("{} is not a redirect status", r.status),
                    "use 301, 302, 307 or 308",
                );
            }
        }
    }
    if let Some(d) = &s.notifications.discord {
        if d.channel.is_some() == d.webhook_env.is_some() {
            p.add(
                "spec.notifications.discord",
                "set exactly one of `channel` and `webhookEnv`",
                "`channel: \"1234\"` with a bot token, or `webhookEnv: DISCORD_WEBHOOK_URL`",
            );
        }
        if let Some(c) = &d.channel {
            if c.parse::<u64>().is_err() {
                p.add(
                    "spec.notifications.discord.channel",
                    format!("`{c}` is not a Discord channel id"),
                    "copy the id with Discord's developer mode: a number like \"1090000000000000111\"",
                );
            }
        }
    }
    p.0
}

/// Scheduled jobs: their rule, schedule and role, and their task definitions checked as a
/// service's are.
fn jobs(p: &mut Problems, m: &AppManifest, manifest_dir: &Path, image_names: &BTreeSet<&str>) {
    let s = &m.spec;
    let families = |text: Option<&str>| {
        text.and_then(|t| crate::domain::taskdef::TaskDefinition::from_json(t).ok())
            .map(|td| td.family)
    };
    let service_families: BTreeSet<String> = s
        .services
        .iter()
        .filter_map(|svc| match &svc.task_definition_content {
            Some(text) => families(Some(text)),
            None => families(
                std::fs::read_to_string(manifest_dir.join(&svc.task_definition))
                    .ok()
                    .as_deref(),
            ),
        })
        .collect();
    let mut names = BTreeSet::new();
    for (i, job) in s.jobs.iter().enumerate() {
        let at = format!("spec.jobs[{i}]");
        if !names.insert(job.name.as_str()) {
            p.add(
                format!("{at}.name"),
                format!("job `{}` is declared twice", job.name),
                "give each job a unique name",
            );
        }
        let rule = crate::plan::jobs::rule_name(&m.metadata.name, &job.name);
        if !crate::plan::jobs::valid_rule_name(&rule) {
            p.add(
                format!("{at}.name"),
                format!("the job's EventBridge rule would be `{rule}`, not a valid rule name"),
                "letters, digits, `.`, `-` and `_`; app and job name together at most 56 characters",
            );
        }
        if job.cluster.trim().is_empty() {
            p.add(format!("{at}.cluster"), "cluster must not be empty", "");
        }
        if let Err(e) = crate::plan::jobs::check_schedule(&job.schedule) {
            p.add(
                format!("{at}.schedule"),
                format!("`{}`: {e}", job.schedule),
                "EventBridge schedule expressions are in UTC: `rate(1 hour)`, `cron(0 3 * * ? *)`",
            );
        }
        if !job.role_arn.starts_with("arn:aws") || !job.role_arn.contains(":iam::") {
            p.add(
                format!("{at}.roleArn"),
                format!("`{}` is not an IAM role ARN", job.role_arn),
                "the role EventBridge assumes to run the task (ecs:RunTask, iam:PassRole)",
            );
        }
        if job.network.subnets.is_empty() {
            p.add(
                format!("{at}.network.subnets"),
                "a Fargate task needs at least one subnet",
                "",
            );
        }
        for (container, image) in &job.containers {
            if !image_names.contains(image.as_str()) {
                p.add(
                    format!("{at}.containers.{container}"),
                    format!("image `{image}` is not declared in spec.images"),
                    format!(
                        "declare it under spec.images or use one of: {}",
                        join(image_names)
                    ),
                );
            }
        }
        let text = match &job.task_definition_content {
            Some(text) => Some(text.clone()),
            None => std::fs::read_to_string(manifest_dir.join(&job.task_definition)).ok(),
        };
        let td = match &text {
            Some(text) => checked_task_definition(
                p,
                &at,
                &job.task_definition,
                text,
                &job.containers,
                &job.allow_literal_env,
            ),
            None => {
                p.add(
                    format!("{at}.taskDefinition"),
                    format!(
                        "task definition file `{}` does not exist",
                        job.task_definition
                    ),
                    "give a path relative to this manifest's directory",
                );
                None
            }
        };
        if let Some(family) = td.map(|td| td.family) {
            if service_families.contains(&family) {
                p.add(
                    format!("{at}.taskDefinition"),
                    format!("family `{family}` is also a service's"),
                    "give the job its own family: old revisions of a service's family are deregistered, and the job's rule may run one",
                );
            }
        }
    }
}

/// `serviceConnect` and `serviceRegistries` on their own (their names against the task
/// definition are checked with it).
fn service_discovery(p: &mut Problems, at: &str, svc: &crate::domain::ServiceSpec) {
    let arn_of = |v: &str, kind: &str| {
        v.starts_with("arn:aws")
            && v.split(':').nth(2) == Some("servicediscovery")
            && v.rsplit(':')
                .next()
                .is_some_and(|r| r.starts_with(&format!("{kind}/")))
    };
    if let Some(c) = &svc.service_connect {
        if !arn_of(&c.namespace, "namespace") {
            p.add(
                format!("{at}.serviceConnect.namespace"),
                format!("`{}` is not a Cloud Map namespace ARN", c.namespace),
                "give the namespace's ARN (arn:aws:servicediscovery:REGION:ACCOUNT:namespace/ns-...): ECS reports the ARN, so a name would differ on every diff",
            );
        }
        let mut offered = BTreeSet::new();
        for (i, s) in c.services.iter().enumerate() {
            let at = format!("{at}.serviceConnect.services[{i}]");
            let discovery = s.discovery_name.as_deref().unwrap_or(&s.port_name);
            if !offered.insert(discovery) {
                p.add(
                    format!("{at}.discoveryName"),
                    format!("`{discovery}` is offered twice"),
                    "each offered port needs its own discovery name",
                );
            }
            if let Some(d) = &s.discovery_name {
                if !is_dns_label(d) {
                    p.add(
                        format!("{at}.discoveryName"),
                        format!("`{d}` is not a DNS label"),
                        "lower-case letters, digits and `-`, at most 63 characters",
                    );
                }
            }
            for (j, a) in s.client_aliases.iter().enumerate() {
                if a.port == 0 {
                    p.add(format!("{at}.clientAliases[{j}].port"), "port 0", "1-65535");
                }
                if let Some(d) = &a.dns_name {
                    if d.is_empty() || d.len() > 253 || !d.split('.').all(is_dns_label) {
                        p.add(
                            format!("{at}.clientAliases[{j}].dnsName"),
                            format!("`{d}` is not a DNS name"),
                            "e.g. `api.internal`",
                        );
                    }
                }
            }
        }
    }
    for (i, r) in svc.service_registries.iter().enumerate() {
        let at = format!("{at}.serviceRegistries[{i}]");
        if !arn_of(&r.registry_arn, "service") {
            p.add(
                format!("{at}.registryArn"),
                format!("`{}` is not a Cloud Map service ARN", r.registry_arn),
                "arn:aws:servicediscovery:REGION:ACCOUNT:service/srv-...",
            );
        }
        if r.container_name.is_some() != r.container_port.is_some() {
            p.add(
                at,
                "containerName and containerPort go together",
                "give both (SRV records), or neither",
            );
        }
    }
}

/// The task definition file's own checks (`gantry ecs check`), and its containers against the
/// service's `containers` map.
fn task_definition(p: &mut Problems, svc_at: &str, file: &Path, svc: &crate::domain::ServiceSpec) {
    let at = &format!("{svc_at}.taskDefinition");
    match std::fs::read_to_string(file) {
        Ok(text) => task_definition_text(p, svc_at, &file.display().to_string(), &text, svc),
        Err(e) => p.add(at, format!("cannot read `{}`: {e}", file.display()), ""),
    }
}

/// A task definition's own checks, and its containers against the `containers` map of the
/// service or job at `owner_at`; the parsed definition when it parses.
fn checked_task_definition(
    p: &mut Problems,
    owner_at: &str,
    file: &str,
    text: &str,
    containers: &std::collections::BTreeMap<String, String>,
    allow_literal_env: &[String],
) -> Option<crate::domain::taskdef::TaskDefinition> {
    use crate::domain::taskdef::TaskDefinition;
    let at = &format!("{owner_at}.taskDefinition");
    let td = match TaskDefinition::from_json(text) {
        Ok(td) => td,
        Err(e) => {
            p.add(
                at,
                format!(
                    "`{}`:{}:{}: not a task definition: {e}",
                    file,
                    e.line(),
                    e.column()
                ),
                "",
            );
            return None;
        }
    };
    for problem in crate::plan::taskdef_check::check(&td, allow_literal_env) {
        p.add(
            at,
            format!("`{}` {}: {}", file, problem.path, problem.message),
            problem.hint,
        );
    }
    for container in containers.keys() {
        if !td
            .container_definitions
            .iter()
            .any(|c| &c.name == container)
        {
            p.add(
                at.to_string(),
                format!(
                    "`{}` has no container named `{container}` (named in containers)",
                    file
                ),
                "",
            );
        }
    }
    Some(td)
}

/// A service's task definition: its own checks, then the load balancer, Service Connect,
/// registries and migration against its containers and ports.
fn task_definition_text(
    p: &mut Problems,
    svc_at: &str,
    file: &str,
    text: &str,
    svc: &crate::domain::ServiceSpec,
) {
    let Some(td) = checked_task_definition(
        p,
        svc_at,
        file,
        text,
        &svc.containers,
        &svc.allow_literal_env,
    ) else {
        return;
    };
    let names: BTreeSet<&str> = td
        .container_definitions
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    if let Some(lb) = &svc.load_balancer {
        match td
            .container_definitions
            .iter()
            .find(|c| c.name == lb.container_name)
        {
            None => p.add(
                format!("{svc_at}.loadBalancer.containerName"),
                format!("`{}` has no container named `{}`", file, lb.container_name),
                format!("use one of: {}", join(&names)),
            ),
            Some(c) => {
                let ports: BTreeSet<String> = c
                    .other
                    .get("portMappings")
                    .and_then(|v| v.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m.get("containerPort").and_then(|p| p.as_u64()))
                    .map(|p| p.to_string())
                    .collect();
                if !ports.contains(&lb.container_port.to_string()) {
                    let have: BTreeSet<&str> = ports.iter().map(String::as_str).collect();
                    p.add(
                        format!("{svc_at}.loadBalancer.containerPort"),
                        format!(
                            "container `{}` in `{}` maps no port {}",
                            lb.container_name, file, lb.container_port
                        ),
                        if have.is_empty() {
                            "add it to the container's portMappings".to_string()
                        } else {
                            format!("its portMappings have: {}", join(&have))
                        },
                    );
                }
            }
        }
    }
    let port_names: BTreeSet<&str> = td
        .container_definitions
        .iter()
        .flat_map(|c| {
            c.other
                .get("portMappings")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|m| m.get("name").and_then(|n| n.as_str()))
        })
        .collect();
    for (i, s) in svc
        .service_connect
        .iter()
        .flat_map(|c| &c.services)
        .enumerate()
    {
        if !port_names.contains(s.port_name.as_str()) {
            p.add(
                format!("{svc_at}.serviceConnect.services[{i}].portName"),
                format!("`{}` names no port mapping `{}`", file, s.port_name),
                if port_names.is_empty() {
                    "give the container's portMappings entry a `name`".to_string()
                } else {
                    format!("use one of: {}", join(&port_names))
                },
            );
        }
    }
    for (i, r) in svc.service_registries.iter().enumerate() {
        if let Some(c) = &r.container_name {
            if !names.contains(c.as_str()) {
                p.add(
                    format!("{svc_at}.serviceRegistries[{i}].containerName"),
                    format!("`{}` has no container named `{c}`", file),
                    format!("use one of: {}", join(&names)),
                );
            }
        }
    }
    if let Some(m) = &svc.migration {
        if !names.contains(m.container.as_str()) {
            p.add(
                format!("{svc_at}.migration.container"),
                format!("`{}` has no container named `{}`", file, m.container),
                format!("use one of: {}", join(&names)),
            );
        }
    }
}

fn source(p: &mut Problems, m: &AppManifest) {
    let src = &m.spec.source;
    let parts: Vec<&str> = src.repo.split('/').collect();
    if parts.len() != 2
        || parts
            .iter()
            .any(|s| s.is_empty() || s.contains(char::is_whitespace))
    {
        p.add(
            "spec.source.repo",
            format!("`{}` is not OWNER/NAME", src.repo),
            "write the GitHub repository as `owner/name`",
        );
    }
    if let Some(url) = &src.url {
        let ok_scheme =
            url.starts_with("https://") || url.starts_with("file://") || url.starts_with('/');
        if !ok_scheme {
            p.add(
                "spec.source.url",
                format!("unsupported clone URL `{}`", redact_userinfo(url)),
                "use https://, file:// or an absolute path",
            );
        } else if url.starts_with("https://")
            && url["https://".len()..]
                .split('/')
                .next()
                .is_some_and(|h| h.contains('@'))
        {
            p.add(
                "spec.source.url",
                "credentials must not be written in the clone URL",
                "remove `user:token@`; set GANTRY_GITHUB_TOKEN instead",
            );
        }
    }
    if src.branch.trim().is_empty() || Glob::new(&src.branch).is_err() {
        p.add(
            "spec.source.branch",
            format!("`{}` is not a valid branch name or glob", src.branch),
            "e.g. `main`",
        );
    }
    if let Some(t) = &src.tags {
        if Glob::new(t).is_err() {
            p.add(
                "spec.source.tags",
                format!("`{t}` is not a valid glob"),
                "e.g. `v*`",
            );
        }
    }
    for (i, g) in src.paths.iter().enumerate() {
        if Glob::new(g).is_err() {
            p.add(
                format!("spec.source.paths[{i}]"),
                format!("`{g}` is not a valid glob"),
                "e.g. `api/**`",
            );
        }
    }
}

pub(super) fn duplicate_names(set: &ManifestSet) -> Vec<ManifestError> {
    let mut seen: HashMap<&str, &Path> = HashMap::new();
    let mut errors = Vec::new();
    // Two sites syncing one bucket and prefix would each mark the other's files stale.
    let mut targets: HashMap<(String, String), (String, String)> = HashMap::new();
    for app in &set.apps {
        for (i, site) in app.manifest.spec.sites.iter().enumerate() {
            let key = (
                site.bucket.clone(),
                site.prefix.trim_matches('/').to_owned(),
            );
            let here = (app.manifest.metadata.name.clone(), site.name.clone());
            if let Some((other_app, other_site)) = targets.insert(key.clone(), here) {
                let text = std::fs::read_to_string(&app.file).unwrap_or_default();
                let path = format!("spec.sites[{i}].bucket");
                errors.push(ManifestError {
                    file: app.file.clone(),
                    line: super::Locator::new(&text).line(0, &path),
                    path,
                    message: format!(
                        "site `{}` syncs s3://{}/{} like site `{other_site}` of app `{other_app}`: each would mark the other's files stale and delete them",
                        site.name, key.0, key.1
                    ),
                    hint: Some("give each site its own bucket or `prefix`".into()),
                });
            }
        }
    }
    for app in &set.apps {
        let name = app.manifest.metadata.name.as_str();
        if let Some(first) = seen.insert(name, &app.file) {
            let text = std::fs::read_to_string(&app.file).unwrap_or_default();
            errors.push(ManifestError {
                file: app.file.clone(),
                line: super::Locator::new(&text).line(0, "metadata.name"),
                path: "metadata.name".into(),
                message: format!("app `{name}` is also defined in {}", first.display()),
                hint: Some("app names must be unique across the manifests directory".into()),
            });
        }
    }
    errors
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_bucket_name(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
}

/// `spec.build.caches`: few, uniquely named, each a directory of its own inside the build's
/// directories, keyed by a bounded list of files in the checkout.
fn caches(p: &mut Problems, caches: &[crate::domain::CacheSpec]) {
    use crate::plan::cache::{place, Place, MAX_CACHES, MAX_KEY_FILES};
    if caches.len() > MAX_CACHES {
        p.add(
            "spec.build.caches",
            format!("{} caches declared; at most {MAX_CACHES}", caches.len()),
            "cache the directories that take the build's time: the package manager's, the framework's",
        );
    }
    let mut names = BTreeSet::new();
    let mut places: Vec<(usize, Place)> = Vec::new();
    for (i, c) in caches.iter().enumerate() {
        let at = format!("spec.build.caches[{i}]");
        let name = c.cache_name();
        if !is_dns_label(&name) {
            p.add(
                format!("{at}.name"),
                format!("`{name}` is not a valid cache name"),
                "lowercase letters, digits and '-', at most 63 characters; set `name`",
            );
        } else if !names.insert(name.clone()) {
            p.add(
                format!("{at}.name"),
                format!("cache `{name}` is declared twice"),
                "give each cache a unique `name`",
            );
        }
        match place(&c.path) {
            Err(e) => p.add(
                format!("{at}.path"),
                format!("`{}`: {e}", c.path),
                "a directory relative to the working directory, or `~/...` under the build's home",
            ),
            Ok(here) => {
                if let Some((j, _)) = places.iter().find(|(_, other)| other.overlaps(&here)) {
                    p.add(
                        format!("{at}.path"),
                        format!(
                            "`{}` overlaps `{}` (spec.build.caches[{j}])",
                            c.path, caches[*j].path
                        ),
                        "a directory can be in one cache only: drop one, or cache the outer one",
                    );
                }
                places.push((i, here));
            }
        }
        if c.key.len() > MAX_KEY_FILES {
            p.add(
                format!("{at}.key"),
                format!("{} key files; at most {MAX_KEY_FILES}", c.key.len()),
                "key a cache by its lock files",
            );
        }
        for (k, file) in c.key.iter().enumerate() {
            if file.trim().is_empty() || !is_relative_inside(file) || file.len() > 512 {
                p.add(
                    format!("{at}.key[{k}]"),
                    format!("`{file}` must be a file relative to the working directory, inside the checkout"),
                    "e.g. `package-lock.json`",
                );
            }
        }
    }
}

fn is_relative_inside(p: &str) -> bool {
    let path = Path::new(p);
    !path.is_absolute()
        && !path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
}

fn join(names: &BTreeSet<&str>) -> String {
    if names.is_empty() {
        "(none declared)".into()
    } else {
        names.iter().copied().collect::<Vec<_>>().join(", ")
    }
}

fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}[redacted]{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

/// The duration fields of an App, as paths into the document.
const DURATION_FIELDS: &[&[&str]] = &[&["spec", "build", "timeout"], &["spec", "rolloutTimeout"]];

/// Reports every duration field that does not parse (or exceeds the bound) and removes it
/// from the document, so deserialising the rest can go on and report its own problems.
pub fn take_bad_durations(doc: &mut serde_yaml::Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    for path in DURATION_FIELDS {
        let (last, parents) = path.split_last().expect("paths are not empty");
        let parent = parents
            .iter()
            .try_fold(&mut *doc, |at, key| at.get_mut(*key));
        let Some(map) = parent.and_then(|p| p.as_mapping_mut()) else {
            continue;
        };
        let Some(value) = map.get(*last) else {
            continue;
        };
        let error = match value {
            serde_yaml::Value::String(text) => crate::domain::duration::parse(text)
                .err()
                .map(|e| e.to_string()),
            serde_yaml::Value::Null => None,
            other => Some(format!(
                "`{}` is not a duration",
                serde_yaml::to_string(other).unwrap_or_default().trim()
            )),
        };
        if let Some(message) = error {
            map.remove(*last);
            problems.push(Problem {
                path: path.join("."),
                message,
                hint: Some(crate::domain::duration::HINT.into()),
            });
        }
    }
    problems
}
