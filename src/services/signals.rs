//! Wake-ups for rollout watchers: an ECS event about a service (from EventBridge, at
//! `/hooks/eventbridge`) makes its watcher poll now instead of after its back-off. Events only
//! shorten the wait; the verdict still comes from DescribeServices.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct EcsSignals {
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
    /// Woken by an event about any service (the drift worker checks soon after).
    any: Arc<Notify>,
}

/// `cluster/service`, as both the watcher and ECS service ARNs name a service.
pub fn key(cluster: &str, service: &str) -> String {
    let cluster = cluster.rsplit('/').next().unwrap_or(cluster);
    format!("{cluster}/{service}")
}

impl EcsSignals {
    /// The notifier woken by an event about any service.
    pub fn any(&self) -> Arc<Notify> {
        self.any.clone()
    }

    /// The notifier a watcher of `key` waits on.
    pub fn waiter(&self, key: &str) -> Arc<Notify> {
        self.waiters
            .lock()
            .expect("signals lock")
            .entry(key.to_owned())
            .or_default()
            .clone()
    }

    /// Wakes the watcher of the service an ARN (`arn:aws:ecs:R:A:service/CLUSTER/NAME`) names;
    /// returns whether the ARN named a service.
    pub fn signal_arn(&self, arn: &str) -> bool {
        let Some((_, path)) = arn.split_once(":service/") else {
            return false;
        };
        let Some((cluster, service)) = path.split_once('/') else {
            return false;
        };
        // notify_one keeps a permit, so an event between two polls is not lost.
        self.waiter(&key(cluster, service)).notify_one();
        self.any.notify_one();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_event_wakes_the_matching_watcher() {
        let s = EcsSignals::default();
        let w = s.waiter(&key("arn:aws:ecs:us-east-1:1:cluster/prod", "api"));
        assert!(s.signal_arn("arn:aws:ecs:us-east-1:1:service/prod/api"));
        tokio::time::timeout(std::time::Duration::from_secs(1), w.notified())
            .await
            .expect("woken");
        assert!(!s.signal_arn("arn:aws:ecs:us-east-1:1:task/prod/abc"));
    }
}
