//! `gantry import ecs`: the manifest of a service that already runs, so a team adopts Gantry
//! for it without a redeploy. The inverse of [`super::service_diff::desired`]: the service
//! fields that give back the live settings, so the next reconcile shows no difference; the
//! task definition is written in its normalised form ([`super::taskdef_diff::normalise`]: ECS
//! defaults and read-only fields dropped, secrets kept as ARNs).

use crate::domain::service::ServiceSettings;
use crate::domain::{
    AppManifest, CapacityProvider, ClientAliasSpec, ConnectServiceSpec, DeploymentBounds,
    LoadBalancerSpec, NetworkSpec, ServiceConnectSpec, ServiceRegistrySpec, ServiceSpec, SiteSpec,
};

/// What an import found that a manifest cannot say, or says differently.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub service: ServiceSpec,
    /// Things to tell the person importing (each a sentence).
    pub notes: Vec<String>,
}

/// The service entry for a live service. `autoscaled`: its count is Application Auto
/// Scaling's (Gantry cannot see that from DescribeServices).
pub fn service_spec(
    name: &str,
    cluster: &str,
    task_definition_file: &str,
    live: &ServiceSettings,
    autoscaled: bool,
) -> Result<Imported, String> {
    let live = live.clone().normalised();
    let d = ServiceSettings::default();
    let mut notes = Vec::new();
    if live.load_balancers.len() > 1 {
        return Err(format!(
            "the service has {} load balancer targets; a manifest's service has at most one",
            live.load_balancers.len()
        ));
    }
    if !live.circuit_breaker {
        notes.push("the service's deployment circuit breaker is off: Gantry turns it on (with rollback) at the first deployment".into());
    }
    let count = |n: i32| u32::try_from(n).map_err(|_| format!("desired count {n} is negative"));
    let desired_count = match (autoscaled, live.desired_count) {
        (true, _) => None,
        (false, Some(n)) => Some(count(n)?),
        (false, None) => None,
    };
    let percent =
        |n: i32| u32::try_from(n).map_err(|_| format!("deployment percent {n} is negative"));
    let deployment = if (live.minimum_healthy_percent, live.maximum_percent)
        == (d.minimum_healthy_percent, d.maximum_percent)
    {
        None
    } else {
        Some(DeploymentBounds {
            minimum_healthy_percent: percent(live.minimum_healthy_percent)?,
            maximum_percent: percent(live.maximum_percent)?,
        })
    };
    let load_balancer = match live.load_balancers.first() {
        None => None,
        Some(t) => Some(LoadBalancerSpec {
            target_group_arn: t.target_group_arn.clone(),
            container_name: t.container_name.clone(),
            container_port: u16::try_from(t.container_port)
                .map_err(|_| format!("container port {} is out of range", t.container_port))?,
        }),
    };
    let capacity_providers = live
        .capacity_providers
        .iter()
        .map(|p| {
            Ok(CapacityProvider {
                provider: p.name.clone(),
                weight: u32::try_from(p.weight).map_err(|_| format!("weight {}", p.weight))?,
                base: u32::try_from(p.base).map_err(|_| format!("base {}", p.base))?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let port = |n: i32| u16::try_from(n).map_err(|_| format!("port {n} is out of range"));
    let service_connect = match &live.service_connect {
        None => None,
        Some(c) => Some(ServiceConnectSpec {
            namespace: c.namespace.clone(),
            services: c
                .services
                .iter()
                .map(|s| {
                    Ok(ConnectServiceSpec {
                        port_name: s.port_name.clone(),
                        discovery_name: (s.discovery_name != s.port_name)
                            .then(|| s.discovery_name.clone()),
                        client_aliases: s
                            .client_aliases
                            .iter()
                            .map(|a| {
                                Ok(ClientAliasSpec {
                                    port: port(a.port)?,
                                    dns_name: a.dns_name.clone(),
                                })
                            })
                            .collect::<Result<_, String>>()?,
                    })
                })
                .collect::<Result<_, String>>()?,
        }),
    };
    let service_registries = live
        .service_registries
        .iter()
        .map(|r| {
            Ok(ServiceRegistrySpec {
                registry_arn: r.registry_arn.clone(),
                container_name: r.container_name.clone(),
                container_port: r.container_port.map(port).transpose()?,
                port: r.port.map(port).transpose()?,
            })
        })
        .collect::<Result<_, String>>()?;
    let service = ServiceSpec {
        name: name.to_owned(),
        cluster: cluster.to_owned(),
        task_definition: task_definition_file.to_owned(),
        containers: Default::default(),
        desired_count,
        network: live.network.as_ref().map(|n| NetworkSpec {
            subnets: n.subnets.clone(),
            security_groups: n.security_groups.clone(),
            assign_public_ip: n.assign_public_ip,
        }),
        load_balancer,
        migration: None,
        allow_literal_env: vec![],
        autoscaled,
        health_check_grace: (live.health_check_grace_seconds > 0)
            .then(|| std::time::Duration::from_secs(live.health_check_grace_seconds as u64)),
        deployment,
        capacity_providers,
        platform_version: (live.platform_version != d.platform_version)
            .then(|| live.platform_version.clone()),
        enable_execute_command: live.enable_execute_command,
        service_connect,
        service_registries,
        task_definition_content: None,
    };
    Ok(Imported { service, notes })
}

/// The site entry for files already served from `bucket`/`prefix` (behind `distribution`),
/// built into `dir` of the checkout.
pub fn site_spec(bucket: &str, prefix: &str, distribution: Option<&str>, dir: &str) -> SiteSpec {
    SiteSpec {
        name: "web".into(),
        dir: dir.to_owned(),
        bucket: bucket.to_owned(),
        prefix: prefix.trim_matches('/').to_owned(),
        distribution: distribution.map(str::to_owned),
        preset: Default::default(),
        cache_control: vec![],
        redirects: vec![],
        pretty_urls: false,
        spa: false,
        grace_days: None,
        grace_releases: None,
    }
}

/// An App manifest holding the imported service and site. With a site it keeps `base`'s
/// build (a placeholder the person importing replaces with what writes the site's `dir`);
/// without one it builds nothing. The task definition keeps the images it runs until the
/// app declares `images` and maps containers to them.
pub fn app_manifest(
    mut base: AppManifest,
    service: ServiceSpec,
    site: Option<SiteSpec>,
) -> AppManifest {
    if site.is_none() {
        base.spec.build = None;
    }
    base.spec.services = vec![service];
    base.spec.sites = site.into_iter().collect();
    base
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::service::{
        Alias, Connect, ConnectService, Network, Provider, Registry, Target,
    };
    use crate::plan::service_diff::{desired, plan};

    fn live() -> ServiceSettings {
        ServiceSettings {
            desired_count: Some(3),
            network: Some(Network {
                subnets: vec!["subnet-b".into(), "subnet-a".into()],
                security_groups: vec!["sg-1".into()],
                assign_public_ip: true,
            }),
            load_balancers: vec![Target {
                target_group_arn: "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/api/1"
                    .into(),
                container_name: "api".into(),
                container_port: 8000,
            }],
            health_check_grace_seconds: 60,
            minimum_healthy_percent: 50,
            maximum_percent: 200,
            circuit_breaker: true,
            capacity_providers: vec![Provider {
                name: "FARGATE_SPOT".into(),
                weight: 3,
                base: 1,
            }],
            platform_version: "1.4.0".into(),
            enable_execute_command: true,
            service_connect: Some(Connect {
                namespace: "arn:aws:servicediscovery:us-east-1:1:namespace/ns-1".into(),
                services: vec![ConnectService {
                    port_name: "http".into(),
                    discovery_name: "api".into(),
                    client_aliases: vec![Alias {
                        port: 80,
                        dns_name: Some("api.internal".into()),
                    }],
                }],
            }),
            service_registries: vec![Registry {
                registry_arn: "arn:aws:servicediscovery:us-east-1:1:service/srv-1".into(),
                container_name: None,
                container_port: None,
                port: Some(8000),
            }],
        }
    }

    #[test]
    fn the_imported_service_asks_for_exactly_what_runs() {
        let plain = |n| ServiceSettings {
            desired_count: Some(n),
            ..ServiceSettings::default()
        };
        for settings in [live(), plain(1), plain(0)] {
            let imported = service_spec("api", "prod", "api-task.json", &settings, false).unwrap();
            let back = desired(&imported.service);
            let (changes, update) = plan(&back, &settings.clone().normalised());
            assert!(changes.is_empty(), "{changes:?}");
            assert!(update.is_empty());
        }
    }

    #[test]
    fn an_imported_site_keeps_the_placeholder_build_a_service_alone_builds_nothing() {
        let base = crate::manifests::scaffold_app("web", "acme/web", "main");
        let svc = service_spec("api", "prod", "t.json", &live(), false)
            .unwrap()
            .service;
        let site = site_spec("acme-www", "/www/", Some("E123"), "out");
        assert_eq!(site.prefix, "www");
        let with_site = app_manifest(base.clone(), svc.clone(), Some(site));
        assert!(with_site.spec.build.is_some());
        assert_eq!(
            with_site.spec.sites[0].distribution.as_deref(),
            Some("E123")
        );
        let alone = app_manifest(base, svc, None);
        assert!(alone.spec.build.is_none() && alone.spec.sites.is_empty());
    }

    #[test]
    fn what_a_manifest_cannot_say_is_refused_or_noted() {
        let mut s = live();
        s.load_balancers.push(Target {
            target_group_arn: "arn:two".into(),
            container_name: "api".into(),
            container_port: 9000,
        });
        assert!(service_spec("api", "prod", "t.json", &s, false)
            .unwrap_err()
            .contains("2 load balancer targets"));
        let mut s = live();
        s.circuit_breaker = false;
        let i = service_spec("api", "prod", "t.json", &s, false).unwrap();
        assert!(i.notes[0].contains("circuit breaker is off"));
        // An autoscaled service's count is left to the scaler.
        let i = service_spec("api", "prod", "t.json", &live(), true).unwrap();
        assert_eq!(
            (i.service.desired_count, i.service.autoscaled),
            (None, true)
        );
    }
}
