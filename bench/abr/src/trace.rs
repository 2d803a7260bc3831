//! Throughput traces: `start_seconds<TAB>throughput_Mbps` per line, each rate holding until the
//! next line's time; the last line only marks the end. Traces wrap around when a session
//! outlasts them.

use std::path::Path;

/// One throughput trace, scaled.
#[derive(Debug, Clone)]
pub struct Trace {
    pub name: String,
    /// Start of each period, seconds from the trace start (first is 0).
    starts: Vec<f64>,
    /// Throughput of each period in bytes per second.
    rates: Vec<f64>,
    duration: f64,
    /// Bytes the whole trace carries, to skip whole laps of long outages quickly.
    lap_bytes: f64,
}

impl Trace {
    /// Parses a trace; `scale` multiplies every throughput.
    pub fn parse(name: &str, text: &str, scale: f64) -> Result<Self, String> {
        let mut points = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut cols = line.split_whitespace();
            let (Some(t), Some(v)) = (cols.next(), cols.next()) else {
                return Err(format!("{name}:{}: expected `seconds<TAB>Mbps`", n + 1));
            };
            let t: f64 = t
                .parse()
                .map_err(|_| format!("{name}:{}: bad time {t:?}", n + 1))?;
            let v: f64 = v
                .parse()
                .map_err(|_| format!("{name}:{}: bad throughput {v:?}", n + 1))?;
            if !t.is_finite() || !v.is_finite() || v < 0.0 {
                return Err(format!("{name}:{}: out of range", n + 1));
            }
            if let Some(&(last, _)) = points.last() {
                if t <= last {
                    return Err(format!("{name}:{}: time does not increase", n + 1));
                }
            }
            points.push((t, v));
        }
        if points.len() < 2 {
            return Err(format!("{name}: needs at least two lines"));
        }
        let origin = points[0].0;
        let duration = points[points.len() - 1].0 - origin;
        let starts: Vec<f64> = points[..points.len() - 1]
            .iter()
            .map(|p| p.0 - origin)
            .collect();
        let rates: Vec<f64> = points[..points.len() - 1]
            .iter()
            .map(|p| p.1 * scale * 1e6 / 8.0)
            .collect();
        let mut lap_bytes = 0.0;
        for i in 0..rates.len() {
            let end = starts.get(i + 1).copied().unwrap_or(duration);
            lap_bytes += rates[i] * (end - starts[i]);
        }
        if lap_bytes <= 0.0 {
            return Err(format!("{name}: carries no data at all"));
        }
        Ok(Self {
            name: name.to_string(),
            starts,
            rates,
            duration,
            lap_bytes,
        })
    }

    pub fn load(path: &Path, scale: f64) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path.file_stem().map_or_else(
            || path.display().to_string(),
            |s| s.to_string_lossy().into(),
        );
        Self::parse(&name, &text, scale)
    }

    pub fn duration(&self) -> f64 {
        self.duration
    }

    /// Throughput at time `t` in kbit/s (wrapping).
    pub fn kbps_at(&self, t: f64) -> f64 {
        let (i, _) = self.locate(t);
        self.rates[i] * 8.0 / 1000.0
    }

    /// Period index holding time `t` (wrapped into the trace) and the wrapped time.
    fn locate(&self, t: f64) -> (usize, f64) {
        let local = t.rem_euclid(self.duration);
        let i = self
            .starts
            .partition_point(|&s| s <= local)
            .saturating_sub(1);
        (i, local)
    }

    /// Bytes received from time `from` to `to` (`to >= from`; wrapping).
    pub fn bytes_between(&self, from: f64, to: f64) -> f64 {
        let mut left = (to - from).max(0.0);
        let mut bytes = 0.0;
        let laps = (left / self.duration).floor();
        if laps >= 1.0 {
            bytes += laps * self.lap_bytes;
            left -= laps * self.duration;
        }
        let (mut i, mut local) = self.locate(from);
        while left > 0.0 {
            let end = self.starts.get(i + 1).copied().unwrap_or(self.duration);
            let span = (end - local).max(0.0).min(left);
            bytes += self.rates[i] * span;
            left -= span;
            i += 1;
            if i == self.rates.len() {
                i = 0;
            }
            local = self.starts[i];
        }
        bytes
    }

    /// Seconds needed to receive `bytes` starting at time `t`.
    pub fn transfer_secs(&self, t: f64, bytes: f64) -> f64 {
        let mut left = bytes;
        if left <= 0.0 {
            return 0.0;
        }
        let mut elapsed = 0.0;
        // Whole laps first: a huge transfer over a slow trace stays cheap.
        let laps = (left / self.lap_bytes).floor();
        if laps >= 1.0 {
            elapsed += laps * self.duration;
            left -= laps * self.lap_bytes;
        }
        let (mut i, mut local) = self.locate(t + elapsed);
        loop {
            let end = self.starts.get(i + 1).copied().unwrap_or(self.duration);
            let span = (end - local).max(0.0);
            let can = self.rates[i] * span;
            if can >= left && self.rates[i] > 0.0 {
                return elapsed + left / self.rates[i];
            }
            left -= can;
            elapsed += span;
            i += 1;
            if i == self.rates.len() {
                i = 0;
            }
            local = self.starts[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_follow_the_periods_and_wrap() {
        // 1 Mbit/s for 2 s, then nothing for 2 s, then 4 Mbit/s for 1 s.
        let t = Trace::parse("t", "0\t1\n2\t0\n4\t4\n5\t0\n", 1.0).unwrap();
        assert_eq!(t.duration(), 5.0);
        assert!((t.transfer_secs(0.0, 125_000.0) - 1.0).abs() < 1e-9);
        // 250 kB at 1 s: 125 kB by 2 s, outage to 4 s, 125 kB at 500 kB/s = 0.25 s.
        assert!((t.transfer_secs(1.0, 250_000.0) - 3.25).abs() < 1e-9);
        // Wraps: from 4.5 s, 250 kB in the last half second, 0 after: then the next lap.
        assert!((t.transfer_secs(4.5, 250_000.0) - 0.5).abs() < 1e-9);
        assert!((t.transfer_secs(4.5, 375_000.0) - 1.5).abs() < 1e-9);
        // Several laps at once: each lap carries 750 kB.
        assert!((t.transfer_secs(0.0, 1_500_000.0 + 125_000.0) - 11.0).abs() < 1e-9);
        assert_eq!(t.kbps_at(2.5), 0.0);
        // And the other way round: bytes received over an interval.
        assert!((t.bytes_between(1.0, 4.25) - 250_000.0).abs() < 1e-6);
        assert!((t.bytes_between(4.5, 6.0) - 375_000.0).abs() < 1e-6);
        assert!((t.bytes_between(0.0, 11.0) - 1_625_000.0).abs() < 1e-6);
        assert_eq!(t.bytes_between(2.0, 2.0), 0.0);
        assert_eq!(t.kbps_at(5.5), 1000.0);
    }

    #[test]
    fn scale_and_bad_input() {
        let t = Trace::parse("t", "0\t1\n10\t1\n", 0.25).unwrap();
        assert!((t.kbps_at(3.0) - 250.0).abs() < 1e-9);
        assert!(Trace::parse("t", "0\t1\n", 1.0).is_err());
        assert!(Trace::parse("t", "0\t0\n5\t0\n", 1.0).is_err());
        assert!(Trace::parse("t", "0\tx\n5\t1\n", 1.0).is_err());
        assert!(Trace::parse("t", "3\t1\n2\t1\n", 1.0).is_err());
        assert!(Trace::parse("t", "0\t-1\n2\t1\n", 1.0).is_err());
    }
}
