//! [`Rows`]: one metric family whose samples were read from the switch's counters at
//! scrape time, in the order they were read.
//!
//! prometheus-client's own `Family` holds live, mutable metrics in a hash map (random
//! order on every scrape). The switch's values already live in its own atomic counters,
//! updated by the datapath; a scrape copies them once and hands the copies to a
//! per-scrape [`Registry`](prometheus_client::registry::Registry) as `Rows`, so the
//! datapath is untouched and the exposition is in port / host / worker order.

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// A family of constant samples, one per label set, encoded in insertion order.
#[derive(Debug)]
pub struct Rows<L> {
    kind: MetricType,
    rows: Vec<(L, u64)>,
}

impl<L> Rows<L> {
    /// A counter family (the encoder appends `_total` to its name).
    pub fn counters(rows: impl IntoIterator<Item = (L, u64)>) -> Self {
        Rows {
            kind: MetricType::Counter,
            rows: rows.into_iter().collect(),
        }
    }

    /// A gauge family.
    pub fn gauges(rows: impl IntoIterator<Item = (L, u64)>) -> Self {
        Rows {
            kind: MetricType::Gauge,
            rows: rows.into_iter().collect(),
        }
    }
}

impl<L: EncodeLabelSet> EncodeMetric for Rows<L> {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (labels, v) in &self.rows {
            let sample = encoder.encode_family(labels)?;
            match self.kind {
                MetricType::Counter => ConstCounter::new(*v).encode(sample)?,
                _ => ConstGauge::new(*v).encode(sample)?,
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        self.kind
    }

    /// A family without samples is left out of the exposition (as prometheus-client
    /// does with its own families).
    fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}
