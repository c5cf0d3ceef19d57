//! ECS services: the port Gantry needs from ECS, and the rollout that registers task
//! definitions, runs migrations, creates or updates services and watches the deployment it
//! started to a true verdict (see `plan::rollout`), rolling back itself when ECS did not; and
//! scheduled jobs' EventBridge rules pointed at a release (`jobs`).

pub mod diff;
pub mod drift;
pub mod jobs;
pub mod rollout;
pub mod signals;
