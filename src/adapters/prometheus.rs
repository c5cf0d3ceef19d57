//! `ports::Metrics` over prometheus-client: one registry per daemon (no global state, so two
//! daemons in one process count apart), rendered in the Prometheus text format for `/metrics`.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::ports::{Gauges, Metrics};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeploymentLabels {
    app: String,
    environment: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    app: String,
    environment: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    app: String,
    environment: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    step: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    event: String,
    outcome: String,
}

fn seconds_histogram() -> Histogram {
    // 1 s to about 4.5 h.
    Histogram::new(exponential_buckets(1.0, 2.0, 15))
}

pub struct Prometheus {
    /// Encoding takes the registry by reference while gauges are reset: one scrape at a time.
    registry: Mutex<Registry>,
    deployments: Family<DeploymentLabels, Counter>,
    deployment_seconds: Family<AppLabels, Histogram, fn() -> Histogram>,
    steps: Family<StepLabels, Histogram, fn() -> Histogram>,
    deliveries: Family<DeliveryLabels, Counter>,
    pending: Family<QueueLabels, Gauge>,
    drift: Family<AppLabels, Gauge>,
    leader: Gauge,
}

impl Default for Prometheus {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("gantry");
        let deployments = Family::<DeploymentLabels, Counter>::default();
        registry.register(
            "deployments",
            "Deployments that ended, by app, environment and result",
            deployments.clone(),
        );
        let deployment_seconds =
            Family::<AppLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                seconds_histogram,
            );
        registry.register(
            "deployment_duration_seconds",
            "How long deployments ran, start to verdict",
            deployment_seconds.clone(),
        );
        let steps = Family::<StepLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            seconds_histogram,
        );
        registry.register(
            "step_duration_seconds",
            "How long pipeline steps ran, by step and result",
            steps.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "GitHub webhook deliveries answered, by event and outcome",
            deliveries.clone(),
        );
        let pending = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "deployments_pending",
            "Deployments not ended, by state (queued, waiting, awaiting_approval, running)",
            pending.clone(),
        );
        let drift = Family::<AppLabels, Gauge>::default();
        registry.register(
            "drift",
            "1 when the app's live services or sites differ from its release",
            drift.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 when this replica runs the queue, pollers and reporters",
            leader.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            deployments,
            deployment_seconds,
            steps,
            deliveries,
            pending,
            drift,
            leader,
        }
    }
}

impl Metrics for Prometheus {
    fn deployment_finished(&self, app: &str, environment: &str, result: &str, seconds: f64) {
        self.deployments
            .get_or_create(&DeploymentLabels {
                app: app.to_owned(),
                environment: environment.to_owned(),
                result: result.to_owned(),
            })
            .inc();
        self.deployment_seconds
            .get_or_create(&AppLabels {
                app: app.to_owned(),
                environment: environment.to_owned(),
            })
            .observe(seconds);
    }

    fn step_finished(&self, step: &str, result: &str, seconds: f64) {
        self.steps
            .get_or_create(&StepLabels {
                step: step.to_owned(),
                result: result.to_owned(),
            })
            .observe(seconds);
    }

    fn delivery(&self, event: &str, outcome: &str) {
        // The event header is read before the signature is checked: only the events Gantry
        // acts on get a label of their own, so no sender can grow the label set.
        let event = match event {
            "push" | "pull_request" | "ping" => event,
            _ => "other",
        };
        self.deliveries
            .get_or_create(&DeliveryLabels {
                event: event.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    fn render(&self, gauges: &Gauges) -> String {
        let registry = self.registry.lock().expect("metrics registry lock");
        self.pending.clear();
        for (app, environment, state, n) in &gauges.deployments {
            self.pending
                .get_or_create(&QueueLabels {
                    app: app.clone(),
                    environment: environment.clone(),
                    state: state.clone(),
                })
                .set(*n);
        }
        self.drift.clear();
        for (app, environment) in &gauges.apps {
            let drifted = gauges
                .drifted
                .iter()
                .any(|(a, e)| a == app && e == environment);
            self.drift
                .get_or_create(&AppLabels {
                    app: app.clone(),
                    environment: environment.clone(),
                })
                .set(i64::from(drifted));
        }
        self.leader.set(i64::from(gauges.leader));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}
