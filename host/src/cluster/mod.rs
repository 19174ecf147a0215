//! `hive:process/cluster`: a primary's workers (the `worker` resource,
//! `fork`, settings and policies) and a worker's view of its cluster.
//!
//! The interface shares `child-process`'s view: a worker is a forked child
//! (its `Child` lives in the table next to the `Worker`), and forking one
//! is `child-process.fork` with the cluster's settings and a link to the
//! cluster that the worker's TCP uses to join the shared listeners
//! (`runtime::cluster`, `runtime::listen`).

mod host;

use crate::bindings::hive::process::child_process::{Limits, Serialization};
use crate::bindings::hive::process::cluster::{PrimarySettings, SchedulingPolicy};
use crate::child_process::Child;
use crate::runtime::cluster::{Cluster, WorkerLink, WorkerRecord};
use crate::runtime::listen::Policy;
use std::sync::Arc;
use wasmtime::component::Resource;

/// What `hive:process/cluster` knows of the process it serves.
pub struct ClusterCtx {
    /// Set in a worker: its cluster.
    pub worker: Option<Arc<WorkerLink>>,
    /// In a primary: its cluster, made by the first `setup-primary` or
    /// `fork`.
    pub primary: Option<Arc<Cluster>>,
    /// The settings workers are forked with.
    pub settings: PrimarySettings,
}

impl ClusterCtx {
    /// The context of a process started with `argv` and `env`: workers run
    /// its own module with its arguments, and `NODE_CLUSTER_SCHED_POLICY`
    /// picks the default policy, as in Node.
    pub fn new(
        worker: Option<Arc<WorkerLink>>,
        argv: &[String],
        env: &[(String, String)],
    ) -> ClusterCtx {
        let policy = match env.iter().find(|(k, _)| k == "NODE_CLUSTER_SCHED_POLICY") {
            Some((_, v)) if v == "none" => SchedulingPolicy::Shared,
            _ => SchedulingPolicy::RoundRobin,
        };
        ClusterCtx {
            worker,
            primary: None,
            settings: PrimarySettings {
                exec: argv.first().cloned().unwrap_or_default(),
                args: argv.iter().skip(1).cloned().collect(),
                exec_argv: Vec::new(),
                exec_path: None,
                serialization: Serialization::Json,
                silent: false,
                scheduling_policy: policy,
                limits: Limits {
                    max_memory: None,
                    max_cpu_ms: None,
                    max_resources: None,
                    max_address_space: None,
                    max_open_files: None,
                },
            },
        }
    }
}

/// A worker as its primary holds it (Node's `Worker`): the cluster's record
/// of it and its child process.
pub struct Worker {
    record: Arc<WorkerRecord>,
    /// The `Child` resource in the same table (owned by this worker).
    child: Resource<Child>,
}

impl Worker {
    /// Its `Child` resource, borrowed.
    pub(crate) fn child(&self) -> Resource<Child> {
        Resource::new_borrow(self.child.rep())
    }
}

impl From<SchedulingPolicy> for Policy {
    fn from(p: SchedulingPolicy) -> Policy {
        match p {
            SchedulingPolicy::RoundRobin => Policy::RoundRobin,
            SchedulingPolicy::Shared => Policy::Shared,
            SchedulingPolicy::LeastConnections => Policy::LeastConnections,
            SchedulingPolicy::SourceIpHash => Policy::SourceIpHash,
        }
    }
}

impl From<Policy> for SchedulingPolicy {
    fn from(p: Policy) -> SchedulingPolicy {
        match p {
            Policy::RoundRobin => SchedulingPolicy::RoundRobin,
            Policy::Shared => SchedulingPolicy::Shared,
            Policy::LeastConnections => SchedulingPolicy::LeastConnections,
            Policy::SourceIpHash => SchedulingPolicy::SourceIpHash,
        }
    }
}
