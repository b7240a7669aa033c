//! Runtime counters and their Prometheus text rendering (format 0.0.4).
//!
//! Every label value comes from a bounded set: entry ids, exit reason
//! labels, status codes, close code classes (`close_code_label`: a peer
//! picks its close code, so only the standard ones are kept as such) and
//! the side that closed, fixed reason words. Never user input.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Which side ended a WebSocket connection (`by` on `rippy_ws_closed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClosedBy {
    /// A close frame from the client, or the client's connection was lost.
    Client,
    /// The server or the handler closed it (limits, shutdown, `ws.close`).
    Server,
}

impl ClosedBy {
    fn label(self) -> &'static str {
        match self {
            ClosedBy::Client => "client",
            ClosedBy::Server => "server",
        }
    }
}

/// The metric label of a close code: the standard codes (1000-1011, 1015)
/// as themselves, 3000-4999 as `application`, anything else as `other`.
pub(crate) fn close_code_label(code: u16) -> &'static str {
    const STANDARD: [&str; 12] = [
        "1000", "1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008", "1009", "1010",
        "1011",
    ];
    match code {
        1000..=1011 => STANDARD[usize::from(code - 1000)],
        1015 => "1015",
        3000..=4999 => "application",
        _ => "other",
    }
}

/// Counters the HTTP and WebSocket layers update.
#[derive(Default)]
pub struct Metrics {
    /// Requests by router, then status: nested so that a request looks
    /// its router up by `&str`, allocating only the first time it is seen.
    http: Mutex<BTreeMap<String, BTreeMap<u16, u64>>>,
    auth_failures: Mutex<BTreeMap<&'static str, u64>>,
    /// Keyed by (who closed, close code label), both from fixed sets.
    ws_closed: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    pub(crate) ws_connections: AtomicI64,
    pub(crate) ws_frames_sent: AtomicU64,
    gauges: Mutex<BTreeMap<&'static str, (&'static str, Arc<AtomicI64>)>>,
    families: Mutex<Vec<Family>>,
    collectors: Mutex<Vec<Arc<dyn Collector>>>,
}

/// A part of the exposition that another layer owns and renders itself
/// (the process table's families, say): metrics stays a leaf that imports
/// nothing of the runtime.
pub trait Collector: Send + Sync {
    /// Appends this part's families (see [`header`]) to `out`.
    fn collect(&self, out: &mut String);
}

#[derive(Clone)]
enum Family {
    Counter(Arc<CounterVec>),
    Histogram(Arc<HistogramVec>),
}

/// A counter with labels. Label values must come from bounded sets.
pub struct CounterVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    values: Mutex<Series<u64>>,
}

/// Label values and their data, sorted by the values (the order they are
/// rendered in). A series is found by binary search with the caller's
/// `&[&str]`, so counting into one that exists allocates nothing; only a
/// new series copies its values.
struct Series<T>(Vec<(Vec<String>, T)>);

impl<T> Default for Series<T> {
    fn default() -> Self {
        Series(Vec::new())
    }
}

impl<T> Series<T> {
    fn find(&self, values: &[&str]) -> Result<usize, usize> {
        self.0.binary_search_by(|(kept, _)| {
            kept.iter().map(String::as_str).cmp(values.iter().copied())
        })
    }

    fn get(&self, values: &[&str]) -> Option<&T> {
        self.find(values).ok().map(|i| &self.0[i].1)
    }

    fn entry(&mut self, values: &[&str], new: impl FnOnce() -> T) -> &mut T {
        let i = self.find(values).unwrap_or_else(|i| {
            let kept = values.iter().map(|v| v.to_string()).collect();
            self.0.insert(i, (kept, new()));
            i
        });
        &mut self.0[i].1
    }

    fn iter(&self) -> impl Iterator<Item = (&[String], &T)> {
        self.0.iter().map(|(k, v)| (k.as_slice(), v))
    }
}

impl CounterVec {
    /// Adds one for these label values (in the order the labels were declared).
    pub fn inc(&self, values: &[&str]) {
        *self
            .values
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(values, || 0) += 1;
    }

    /// The current count for these label values.
    pub fn get(&self, values: &[&str]) -> u64 {
        self.values
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(values)
            .copied()
            .unwrap_or(0)
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, "counter", self.help);
        for (values, n) in self.values.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "{}{{{}}} {n}",
                self.name,
                label_pairs(self.labels, values, None)
            );
        }
    }
}

#[derive(Clone, Default)]
struct HistogramData {
    /// Each bound's own count (what fits under it and no lower bound):
    /// one add an observation, made cumulative when rendered.
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

/// A histogram with labels (cumulative buckets, seconds).
pub struct HistogramVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    bounds: &'static [f64],
    values: Mutex<Series<HistogramData>>,
}

impl HistogramVec {
    /// Records one observation.
    pub fn observe(&self, values: &[&str], v: f64) {
        let mut map = self.values.lock().unwrap_or_else(|e| e.into_inner());
        let data = map.entry(values, || HistogramData {
            buckets: vec![0; self.bounds.len()],
            ..Default::default()
        });
        // Counted in the first bucket it fits; the rendering adds them up.
        if let Some(i) = self.bounds.iter().position(|bound| v <= *bound) {
            data.buckets[i] += 1;
        }
        data.sum += v;
        data.count += 1;
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, "histogram", self.help);
        for (values, data) in self.values.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let mut n = 0;
            for (bound, fit) in self.bounds.iter().zip(&data.buckets) {
                n += fit;
                let le = format!("{bound}");
                let _ = writeln!(
                    out,
                    "{}_bucket{{{}}} {n}",
                    self.name,
                    label_pairs(self.labels, values, Some(&le))
                );
            }
            let _ = writeln!(
                out,
                "{}_bucket{{{}}} {}",
                self.name,
                label_pairs(self.labels, values, Some("+Inf")),
                data.count
            );
            let labels = label_pairs(self.labels, values, None);
            let _ = writeln!(out, "{}_sum{{{labels}}} {}", self.name, data.sum);
            let _ = writeln!(out, "{}_count{{{labels}}} {}", self.name, data.count);
        }
    }
}

fn label_pairs(names: &[&str], values: &[String], le: Option<&str>) -> String {
    let mut s = String::new();
    for (n, v) in names.iter().zip(values) {
        if !s.is_empty() {
            s.push(',');
        }
        let _ = write!(s, "{n}=\"{}\"", escape_label(v));
    }
    if let Some(le) = le {
        if !s.is_empty() {
            s.push(',');
        }
        let _ = write!(s, "le=\"{le}\"");
    }
    s
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    *map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_insert(0) += 1;
}

impl Metrics {
    pub(crate) fn http_request(&self, router: &str, status: u16) {
        let mut http = self.http.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(statuses) = http.get_mut(router) {
            *statuses.entry(status).or_insert(0) += 1;
            return;
        }
        http.insert(router.to_owned(), BTreeMap::from([(status, 1)]));
    }

    /// Counts a refused credential; `reason` must come from a fixed set.
    pub fn auth_failure(&self, reason: &'static str) {
        bump(&self.auth_failures, reason);
    }

    /// Counts a closed WebSocket. The peer chooses its close code, so the
    /// label is one of a fixed set ([`close_code_label`]), never the number
    /// it sent.
    pub(crate) fn ws_closed(&self, by: ClosedBy, code: u16) {
        bump(&self.ws_closed, (by.label(), close_code_label(code)));
    }

    /// Counts a refused action (`rippy_denials_total{action,entry}`):
    /// `action` is one of [`crate::security::actions::ALL`], `entry` an entry
    /// id from the manifest (or `external` for the embedding program).
    pub(crate) fn denial(&self, action: &'static str, entry: &str) {
        self.denials().inc(&[action, entry]);
    }

    /// Refusals so far of `action` for code of `entry`.
    pub fn denials_of(&self, action: &str, entry: &str) -> u64 {
        self.denials().get(&[action, entry])
    }

    fn denials(&self) -> Arc<CounterVec> {
        self.counter_vec(
            "rippy_denials_total",
            "Actions refused by a policy, by action and entry.",
            &["action", "entry"],
        )
    }

    /// Auth failures so far for `reason`.
    pub fn auth_failures(&self, reason: &str) -> u64 {
        self.auth_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(reason)
            .copied()
            .unwrap_or(0)
    }

    /// Open WebSocket connections.
    pub fn ws_connections(&self) -> i64 {
        self.ws_connections.load(Ordering::Relaxed)
    }

    /// A gauge an application sets (e.g. `rippy_ticker_subscribers`); the
    /// same name always returns the same gauge.
    pub fn gauge(&self, name: &'static str, help: &'static str) -> Arc<AtomicI64> {
        self.gauges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name)
            .or_insert_with(|| (help, Arc::new(AtomicI64::new(0))))
            .1
            .clone()
    }

    /// The counter family `name`, created on first use.
    pub fn counter_vec(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Arc<CounterVec> {
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        for f in families.iter() {
            if let Family::Counter(c) = f
                && c.name == name
            {
                return c.clone();
            }
        }
        let c = Arc::new(CounterVec {
            name,
            help,
            labels,
            values: Mutex::default(),
        });
        families.push(Family::Counter(c.clone()));
        c
    }

    /// The histogram family `name`, created on first use.
    pub fn histogram_vec(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Arc<HistogramVec> {
        // `observe` counts a value in the first bound it fits.
        debug_assert!(
            bounds.windows(2).all(|w| w[0] < w[1]),
            "{name}: bounds not ascending"
        );
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        for f in families.iter() {
            if let Family::Histogram(h) = f
                && h.name == name
            {
                return h.clone();
            }
        }
        let h = Arc::new(HistogramVec {
            name,
            help,
            labels,
            bounds,
            values: Mutex::default(),
        });
        families.push(Family::Histogram(h.clone()));
        h
    }

    /// Adds a part of the exposition another layer owns (rendered first,
    /// in the order added).
    pub fn add_collector(&self, collector: Arc<dyn Collector>) {
        self.collectors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(collector);
    }

    /// The whole exposition text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let collectors = self
            .collectors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for collector in collectors {
            collector.collect(&mut out);
        }
        header(
            &mut out,
            "rippy_ws_connections",
            "gauge",
            "Open WebSocket connections.",
        );
        let _ = writeln!(out, "rippy_ws_connections {}", self.ws_connections());
        header(
            &mut out,
            "rippy_ws_frames_sent_total",
            "counter",
            "WebSocket frames written to clients.",
        );
        let _ = writeln!(
            out,
            "rippy_ws_frames_sent_total {}",
            self.ws_frames_sent.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "rippy_ws_closed_total",
            "counter",
            "WebSocket connections closed, by side and close code.",
        );
        for ((by, code), n) in self
            .ws_closed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "rippy_ws_closed_total{{by=\"{by}\",code=\"{code}\"}} {n}"
            );
        }
        header(
            &mut out,
            "rippy_http_requests_total",
            "counter",
            "HTTP requests by router and status.",
        );
        for (router, statuses) in self.http.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            for (status, n) in statuses {
                let _ = writeln!(
                    out,
                    "rippy_http_requests_total{{router=\"{router}\",status=\"{status}\"}} {n}"
                );
            }
        }
        header(
            &mut out,
            "rippy_auth_failures_total",
            "counter",
            "Rejected tokens by reason.",
        );
        for (reason, n) in self
            .auth_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(out, "rippy_auth_failures_total{{reason=\"{reason}\"}} {n}");
        }
        for (name, (help, g)) in self.gauges.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            header(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {}", g.load(Ordering::Relaxed));
        }
        let families = self
            .families
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for family in families {
            match family {
                Family::Counter(c) => c.render(&mut out),
                Family::Histogram(h) => h.render(&mut out),
            }
        }
        out
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a family.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::{Metrics, close_code_label};

    #[test]
    fn labelled_series_count_apart_and_render_in_order() {
        let m = Metrics::default();
        let c = m.counter_vec("t_total", "test", &["route", "code"]);
        for (route, code) in [("/b", "200"), ("/a", "500"), ("/b", "200"), ("/a", "200")] {
            c.inc(&[route, code]);
        }
        assert_eq!(c.get(&["/b", "200"]), 2);
        assert_eq!(c.get(&["/a", "500"]), 1);
        assert_eq!(c.get(&["/a", "404"]), 0);
        let h = m.histogram_vec("t_seconds", "test", &["route"], &[0.1, 1.0]);
        h.observe(&["/b"], 0.5);
        h.observe(&["/a"], 0.05);
        h.observe(&["/b"], 2.0);
        let text = m.render();
        let a = text.find(r#"t_total{route="/a",code="200"} 1"#).unwrap();
        let a5 = text.find(r#"t_total{route="/a",code="500"} 1"#).unwrap();
        let b = text.find(r#"t_total{route="/b",code="200"} 2"#).unwrap();
        assert!(a < a5 && a5 < b, "{text}");
        assert!(
            text.contains(r#"t_seconds_bucket{route="/a",le="0.1"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"t_seconds_bucket{route="/b",le="1"} 1"#),
            "{text}"
        );
        // Cumulative: what fits under 0.1 is under 1 too.
        assert!(
            text.contains(r#"t_seconds_bucket{route="/a",le="1"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"t_seconds_bucket{route="/b",le="+Inf"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"t_seconds_count{route="/b"} 2"#), "{text}");
        assert!(
            text.find(r#"t_seconds_count{route="/a"}"#)
                < text.find(r#"t_seconds_count{route="/b"}"#)
        );
    }

    #[test]
    fn close_codes_map_to_a_bounded_set_of_labels() {
        assert_eq!(close_code_label(1000), "1000");
        assert_eq!(close_code_label(1011), "1011");
        assert_eq!(close_code_label(1015), "1015");
        assert_eq!(close_code_label(3000), "application");
        assert_eq!(close_code_label(4321), "application");
        assert_eq!(close_code_label(1012), "other");
        assert_eq!(close_code_label(2999), "other");
        assert_eq!(close_code_label(0), "other");
        assert_eq!(close_code_label(u16::MAX), "other");
    }
}
