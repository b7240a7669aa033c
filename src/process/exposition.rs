//! The process layer's part of `/metrics`: live processes, spawns and exits
//! per process entry, service restarts and dropped messages, rendered from
//! the process table when the page is asked for.

use std::fmt::Write;
use std::sync::Weak;

use super::{Node, ServiceHandle};
use crate::metrics::{Collector, header};

/// Renders the process families of one node.
pub(crate) struct ProcessCollector {
    /// Weak: the node owns the metrics that own this collector.
    pub node: Weak<Node>,
    /// Every service of the manifest, by id.
    pub services: Vec<(String, std::sync::Arc<ServiceHandle>)>,
}

impl Collector for ProcessCollector {
    fn collect(&self, out: &mut String) {
        let Some(node) = self.node.upgrade() else {
            return;
        };
        let mut specs = node.specs();
        specs.sort_by(|a, b| a.0.cmp(&b.0));
        header(
            out,
            "rippy_processes",
            "gauge",
            "Live processes per process entry.",
        );
        for (id, s) in &specs {
            let _ = writeln!(out, "rippy_processes{{entry=\"{id}\"}} {}", s.live());
        }
        header(
            out,
            "rippy_process_spawns_total",
            "counter",
            "Processes spawned per process entry.",
        );
        for (id, s) in &specs {
            let _ = writeln!(
                out,
                "rippy_process_spawns_total{{entry=\"{id}\"}} {}",
                s.spawns()
            );
        }
        header(
            out,
            "rippy_process_exits_total",
            "counter",
            "Process exits per entry and reason.",
        );
        for (id, s) in &specs {
            for (reason, n) in s.exits() {
                let _ = writeln!(
                    out,
                    "rippy_process_exits_total{{entry=\"{id}\",reason=\"{reason}\"}} {n}"
                );
            }
        }
        let mut services: Vec<_> = self.services.iter().collect();
        services.sort_by(|a, b| a.0.cmp(&b.0));
        header(
            out,
            "rippy_service_restarts_total",
            "counter",
            "Service restarts after failures.",
        );
        for (id, s) in &services {
            let _ = writeln!(
                out,
                "rippy_service_restarts_total{{service=\"{id}\"}} {}",
                s.restarts()
            );
        }
        header(
            out,
            "rippy_messages_dropped_total",
            "counter",
            "Messages dropped, by reason.",
        );
        for (reason, n) in node.dropped() {
            let _ = writeln!(
                out,
                "rippy_messages_dropped_total{{reason=\"{reason}\"}} {n}"
            );
        }
    }
}
