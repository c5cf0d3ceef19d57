//! What an existing ECS service needs besides its task definition: the manifest's desired
//! settings against the live ones, field by field. Only a real difference makes an
//! `UpdateService`, and it carries every changed field (and nothing else: the desired count of
//! an autoscaled service is never sent).

use crate::domain::service::{
    Alias, Connect, ConnectService, Network, Provider, Registry, ServiceSettings, Target,
};
use crate::domain::ServiceSpec;

/// The settings a manifest's service asks for, normalised.
pub fn desired(svc: &ServiceSpec) -> ServiceSettings {
    let d = ServiceSettings::default();
    ServiceSettings {
        desired_count: if svc.autoscaled {
            None
        } else {
            Some(svc.desired_count.unwrap_or(1) as i32)
        },
        network: svc.network.as_ref().map(|n| Network {
            subnets: n.subnets.clone(),
            security_groups: n.security_groups.clone(),
            assign_public_ip: n.assign_public_ip,
        }),
        load_balancers: svc
            .load_balancer
            .iter()
            .map(|lb| Target {
                target_group_arn: lb.target_group_arn.clone(),
                container_name: lb.container_name.clone(),
                container_port: i32::from(lb.container_port),
            })
            .collect(),
        health_check_grace_seconds: svc
            .health_check_grace
            .map_or(0, |g| g.as_secs().min(i32::MAX as u64) as i32),
        minimum_healthy_percent: svc
            .deployment
            .as_ref()
            .map_or(d.minimum_healthy_percent, |b| {
                b.minimum_healthy_percent as i32
            }),
        maximum_percent: svc
            .deployment
            .as_ref()
            .map_or(d.maximum_percent, |b| b.maximum_percent as i32),
        circuit_breaker: true,
        capacity_providers: svc
            .capacity_providers
            .iter()
            .map(|c| Provider {
                name: c.provider.clone(),
                weight: c.weight as i32,
                base: c.base as i32,
            })
            .collect(),
        platform_version: svc.platform_version.clone().unwrap_or(d.platform_version),
        enable_execute_command: svc.enable_execute_command,
        service_connect: svc.service_connect.as_ref().map(|c| Connect {
            namespace: c.namespace.clone(),
            services: c
                .services
                .iter()
                .map(|s| ConnectService {
                    port_name: s.port_name.clone(),
                    discovery_name: s.discovery_name.clone().unwrap_or(s.port_name.clone()),
                    client_aliases: s
                        .client_aliases
                        .iter()
                        .map(|a| Alias {
                            port: i32::from(a.port),
                            dns_name: a.dns_name.clone(),
                        })
                        .collect(),
                })
                .collect(),
        }),
        service_registries: svc
            .service_registries
            .iter()
            .map(|r| Registry {
                registry_arn: r.registry_arn.clone(),
                container_name: r.container_name.clone(),
                container_port: r.container_port.map(i32::from),
                port: r.port.map(i32::from),
            })
            .collect(),
    }
    .normalised()
}

/// One field that differs: its name as in the ECS API, live and desired values as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub field: &'static str,
    pub live: String,
    pub desired: String,
}

/// An UpdateService: each `Some` field is sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceUpdate {
    pub task_definition: Option<String>,
    pub desired_count: Option<i32>,
    pub network: Option<Network>,
    pub load_balancers: Option<Vec<Target>>,
    pub health_check_grace_seconds: Option<i32>,
    /// Minimum healthy and maximum percent, with the circuit breaker (sent together).
    pub deployment: Option<(i32, i32)>,
    pub capacity_providers: Option<Vec<Provider>>,
    pub platform_version: Option<String>,
    pub enable_execute_command: Option<bool>,
    /// `Some(None)` turns Service Connect off.
    pub service_connect: Option<Option<Connect>>,
    pub service_registries: Option<Vec<Registry>>,
}

impl ServiceUpdate {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Whether ECS starts a new deployment for it (tasks are replaced); a count or a grace
    /// period alone does not.
    pub fn replaces_tasks(&self) -> bool {
        self.task_definition.is_some()
            || self.network.is_some()
            || self.load_balancers.is_some()
            || self.capacity_providers.is_some()
            || self.platform_version.is_some()
            || self.enable_execute_command.is_some()
            || self.service_connect.is_some()
            || self.service_registries.is_some()
    }
}

fn show_network(n: &Option<Network>) -> String {
    match n {
        None => "none".into(),
        Some(n) => format!(
            "subnets [{}], security groups [{}], public IP {}",
            n.subnets.join(", "),
            n.security_groups.join(", "),
            if n.assign_public_ip { "on" } else { "off" }
        ),
    }
}

fn show_targets(t: &[Target]) -> String {
    if t.is_empty() {
        return "none".into();
    }
    t.iter()
        .map(|t| {
            format!(
                "{} -> {}:{}",
                t.target_group_arn, t.container_name, t.container_port
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn show_providers(p: &[Provider]) -> String {
    if p.is_empty() {
        return "launch type FARGATE".into();
    }
    p.iter()
        .map(|p| format!("{} (weight {}, base {})", p.name, p.weight, p.base))
        .collect::<Vec<_>>()
        .join(", ")
}

fn show_connect(c: &Option<Connect>) -> String {
    let Some(c) = c else {
        return "off".into();
    };
    let offered: Vec<String> = c
        .services
        .iter()
        .map(|s| {
            let aliases: Vec<String> = s
                .client_aliases
                .iter()
                .map(|a| match &a.dns_name {
                    Some(d) => format!("{d}:{}", a.port),
                    None => format!(":{}", a.port),
                })
                .collect();
            if aliases.is_empty() {
                format!("{} as {}", s.port_name, s.discovery_name)
            } else {
                format!(
                    "{} as {} ({})",
                    s.port_name,
                    s.discovery_name,
                    aliases.join(", ")
                )
            }
        })
        .collect();
    if offered.is_empty() {
        format!("client of {}", c.namespace)
    } else {
        format!("{}: {}", c.namespace, offered.join(", "))
    }
}

fn show_registries(r: &[Registry]) -> String {
    if r.is_empty() {
        return "none".into();
    }
    r.iter()
        .map(|r| {
            let mut s = r.registry_arn.clone();
            if let Some(c) = &r.container_name {
                s.push_str(&format!(" -> {c}:{}", r.container_port.unwrap_or_default()));
            }
            if let Some(p) = r.port {
                s.push_str(&format!(" port {p}"));
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every field where `live` differs from `desired`, and the update that applies them.
pub fn plan(desired: &ServiceSettings, live: &ServiceSettings) -> (Vec<Change>, ServiceUpdate) {
    let live = live.clone().normalised();
    let mut changes = Vec::new();
    let mut update = ServiceUpdate::default();
    let mut change = |field: &'static str, live: String, desired: String| {
        changes.push(Change {
            field,
            live,
            desired,
        })
    };
    if let Some(want) = desired.desired_count {
        if live.desired_count != Some(want) {
            change(
                "desiredCount",
                live.desired_count.map_or("-".into(), |c| c.to_string()),
                want.to_string(),
            );
            update.desired_count = Some(want);
        }
    }
    // A manifest without a network leaves the service's alone.
    if desired.network.is_some() && desired.network != live.network {
        change(
            "networkConfiguration",
            show_network(&live.network),
            show_network(&desired.network),
        );
        update.network = desired.network.clone();
    }
    if desired.load_balancers != live.load_balancers {
        change(
            "loadBalancers",
            show_targets(&live.load_balancers),
            show_targets(&desired.load_balancers),
        );
        update.load_balancers = Some(desired.load_balancers.clone());
    }
    if desired.health_check_grace_seconds != live.health_check_grace_seconds {
        change(
            "healthCheckGracePeriodSeconds",
            format!("{}s", live.health_check_grace_seconds),
            format!("{}s", desired.health_check_grace_seconds),
        );
        update.health_check_grace_seconds = Some(desired.health_check_grace_seconds);
    }
    if (
        desired.minimum_healthy_percent,
        desired.maximum_percent,
        desired.circuit_breaker,
    ) != (
        live.minimum_healthy_percent,
        live.maximum_percent,
        live.circuit_breaker,
    ) {
        let show = |s: &ServiceSettings| {
            format!(
                "{}%-{}%, circuit breaker {}",
                s.minimum_healthy_percent,
                s.maximum_percent,
                if s.circuit_breaker { "on" } else { "off" }
            )
        };
        change("deploymentConfiguration", show(&live), show(desired));
        update.deployment = Some((desired.minimum_healthy_percent, desired.maximum_percent));
    }
    if desired.capacity_providers != live.capacity_providers {
        change(
            "capacityProviderStrategy",
            show_providers(&live.capacity_providers),
            show_providers(&desired.capacity_providers),
        );
        update.capacity_providers = Some(desired.capacity_providers.clone());
    }
    if desired.platform_version != live.platform_version {
        change(
            "platformVersion",
            live.platform_version.clone(),
            desired.platform_version.clone(),
        );
        update.platform_version = Some(desired.platform_version.clone());
    }
    if desired.enable_execute_command != live.enable_execute_command {
        change(
            "enableExecuteCommand",
            live.enable_execute_command.to_string(),
            desired.enable_execute_command.to_string(),
        );
        update.enable_execute_command = Some(desired.enable_execute_command);
    }
    let connect_fits = match (&desired.service_connect, &live.service_connect) {
        (None, None) => true,
        (Some(d), Some(l)) => d.satisfied_by(l),
        _ => false,
    };
    if !connect_fits {
        change(
            "serviceConnectConfiguration",
            show_connect(&live.service_connect),
            show_connect(&desired.service_connect),
        );
        update.service_connect = Some(desired.service_connect.clone());
    }
    if desired.service_registries != live.service_registries {
        change(
            "serviceRegistries",
            show_registries(&live.service_registries),
            show_registries(&desired.service_registries),
        );
        update.service_registries = Some(desired.service_registries.clone());
    }
    (changes, update)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> ServiceSpec {
        serde_yaml::from_str(&format!(
            "name: api\ncluster: c\ntaskDefinition: td.json\n{extra}"
        ))
        .unwrap()
    }

    fn live_of(desired: &ServiceSettings) -> ServiceSettings {
        let mut live = desired.clone();
        // ECS reports lists in its own order.
        if let Some(n) = &mut live.network {
            n.subnets.reverse();
            n.security_groups.reverse();
        }
        live
    }

    #[test]
    fn an_unchanged_service_needs_nothing_whatever_order_ecs_reports() {
        let d = desired(&spec(
            "desiredCount: 2\nnetwork:\n  subnets: [subnet-b, subnet-a]\n  securityGroups: [sg-2, sg-1]\nhealthCheckGrace: 60s\n",
        ));
        let (changes, update) = plan(&d, &live_of(&d));
        assert!(changes.is_empty(), "{changes:?}");
        assert!(update.is_empty());
    }

    #[test]
    fn each_changed_field_is_named_and_sent() {
        let d = desired(&spec(
            "desiredCount: 3\nnetwork:\n  subnets: [subnet-a]\n  securityGroups: [sg-new]\nhealthCheckGrace: 90s\ncapacityProviders:\n  - provider: FARGATE_SPOT\n    weight: 3\n  - provider: FARGATE\n    base: 1\ndeployment:\n  minimumHealthyPercent: 50\n",
        ));
        let live = ServiceSettings {
            desired_count: Some(2),
            network: Some(Network {
                subnets: vec!["subnet-a".into()],
                security_groups: vec!["sg-old".into()],
                assign_public_ip: false,
            }),
            ..ServiceSettings::default()
        };
        let (changes, update) = plan(&d, &live);
        let fields: Vec<_> = changes.iter().map(|c| c.field).collect();
        assert_eq!(
            fields,
            [
                "desiredCount",
                "networkConfiguration",
                "healthCheckGracePeriodSeconds",
                "deploymentConfiguration",
                "capacityProviderStrategy"
            ]
        );
        assert_eq!(update.desired_count, Some(3));
        assert_eq!(update.health_check_grace_seconds, Some(90));
        assert_eq!(update.deployment, Some((50, 200)));
        assert_eq!(
            update.capacity_providers.as_ref().unwrap()[0],
            Provider {
                name: "FARGATE".into(),
                weight: 1,
                base: 1
            }
        );
        assert!(changes[1].live.contains("sg-old") && changes[1].desired.contains("sg-new"));
        assert!(update.replaces_tasks());
    }

    #[test]
    fn an_autoscaled_count_is_never_sent_and_a_count_alone_replaces_no_task() {
        let d = desired(&spec("autoscaled: true\ndesiredCount: 2\n"));
        let live = ServiceSettings {
            desired_count: Some(7),
            ..ServiceSettings::default()
        };
        assert!(plan(&d, &live).0.is_empty());
        let d = desired(&spec("desiredCount: 2\n"));
        let (_, update) = plan(&d, &live);
        assert_eq!(update.desired_count, Some(2));
        assert!(!update.replaces_tasks());
    }

    const NS: &str = "arn:aws:servicediscovery:eu-west-1:123456789012:namespace/ns-abc";

    #[test]
    fn service_connect_defaults_match_what_ecs_reports_and_a_removal_turns_it_off() {
        let d = desired(&spec(&format!(
            "serviceConnect:\n  namespace: {NS}\n  services:\n    - portName: http\n      clientAliases: [{{port: 80}}]\n"
        )));
        // ECS fills in the discovery name and the alias's DNS name.
        let live = ServiceSettings {
            service_connect: Some(Connect {
                namespace: NS.into(),
                services: vec![ConnectService {
                    port_name: "http".into(),
                    discovery_name: "http".into(),
                    client_aliases: vec![Alias {
                        port: 80,
                        dns_name: Some("http.internal".into()),
                    }],
                }],
            }),
            ..d.clone()
        };
        assert!(plan(&d, &live).0.is_empty());
        let mut moved = live.clone();
        moved.service_connect.as_mut().unwrap().services[0].client_aliases[0].port = 8080;
        let (changes, update) = plan(&d, &moved);
        assert_eq!(changes[0].field, "serviceConnectConfiguration");
        assert!(
            changes[0].live.contains("http.internal:8080"),
            "{changes:?}"
        );
        assert!(update.replaces_tasks());
        let (changes, update) = plan(&desired(&spec("")), &live);
        assert_eq!(changes[0].desired, "off");
        assert_eq!(update.service_connect, Some(None));
    }

    #[test]
    fn service_registries_are_compared_in_any_order() {
        let d = desired(&spec(
            "serviceRegistries:\n  - registryArn: arn:b\n  - registryArn: arn:a\n    port: 80\n",
        ));
        let mut live = d.clone();
        live.service_registries.reverse();
        assert!(plan(&d, &live).0.is_empty());
        live.service_registries.pop();
        let (changes, update) = plan(&d, &live);
        assert_eq!(changes[0].field, "serviceRegistries");
        assert_eq!(update.service_registries.unwrap().len(), 2);
    }
}
