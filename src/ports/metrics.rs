//! Metrics, as a port: what the engine and the webhook intake count, and the gauges read from
//! the store when `/metrics` is scraped. The Prometheus adapter implements it; nothing in the
//! core knows the exposition format.

/// Gauges read from the store at scrape time (level, not events).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gauges {
    /// Deployments not finished: (app, environment, state) -> how many.
    pub deployments: Vec<(String, String, String, i64)>,
    /// Apps whose live state drifted from their release: (app, environment).
    pub drifted: Vec<(String, String)>,
    /// Apps (app, environment) in the manifests, so a drift gauge of 0 is exported too.
    pub apps: Vec<(String, String)>,
    /// Whether this replica runs the queue, pollers and reporters.
    pub leader: bool,
}

pub trait Metrics: Send + Sync {
    /// A deployment ended: `result` is its state (`succeeded`, `failed`, ...).
    fn deployment_finished(&self, app: &str, environment: &str, result: &str, seconds: f64);
    /// A step ended: `result` is `succeeded` or `failed`.
    fn step_finished(&self, step: &str, result: &str, seconds: f64);
    /// A webhook delivery was answered: `outcome` as `/hooks/github` decided it.
    fn delivery(&self, event: &str, outcome: &str);
    /// Everything in the Prometheus text exposition format, `gauges` included.
    fn render(&self, gauges: &Gauges) -> String;
}

/// Counts nothing (tools that run no daemon).
pub struct NoMetrics;

impl Metrics for NoMetrics {
    fn deployment_finished(&self, _: &str, _: &str, _: &str, _: f64) {}
    fn step_finished(&self, _: &str, _: &str, _: f64) {}
    fn delivery(&self, _: &str, _: &str) {}
    fn render(&self, _: &Gauges) -> String {
        String::new()
    }
}
