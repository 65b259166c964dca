//! Reading a Prometheus text exposition in tests.

/// One sample line: its metric name, labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric (series) name, e.g. `bff_http_requests_total`.
    pub name: String,
    /// Its labels, in the order written.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

/// Every sample of `exposition` (comments skipped). Label values with
/// escaped quotes are not expected in ours (closed sets) and not handled.
pub fn samples(exposition: &str) -> Vec<Sample> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value = value.parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .filter_map(|pair| {
                    let (key, value) = pair.split_once("=\"")?;
                    Some((key.to_owned(), value.trim_end_matches('"').to_owned()))
                })
                .collect();
            Some(Sample { name: name.to_owned(), labels, value })
        })
        .collect()
}

/// The sum of the samples of `name` whose labels include every pair of
/// `labels` (0 when there are none).
pub fn sum(exposition: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(exposition)
        .into_iter()
        .filter(|s| s.name == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v)))
        .map(|s| s.value)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_and_sums_are_read_by_name_and_labels() {
        let text = "# HELP x_total X.\n# TYPE x_total counter\nx_total{a=\"1\",b=\"two\"} 3\nx_total{a=\"2\",b=\"two\"} 4\ny 1.5\n";
        assert_eq!(samples(text).len(), 3);
        assert_eq!(sum(text, "x_total", &[("b", "two")]), 7.0);
        assert_eq!(sum(text, "x_total", &[("a", "2")]), 4.0);
        assert_eq!(sum(text, "y", &[]), 1.5);
        assert_eq!(sum(text, "x_total", &[("a", "3")]), 0.0);
    }
}
