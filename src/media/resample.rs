//! Sample-rate conversion with rubato, held to an exact output length.
//!
//! The segment layout promises `ceil(n · out / in)` output samples; the resampler's own delay is
//! trimmed at the start and its tail padded or cut at the end so that promise holds exactly.

use rubato::{FftFixedIn, Resampler as _};

use super::layout::resampled_len;

/// Input frames per FFT chunk: large enough to amortise the FFT, small enough to keep
/// the first segment's latency low.
const CHUNK: usize = 4096;

pub struct StereoResampler {
    inner: Option<FftFixedIn<f32>>,
    input: [Vec<f32>; 2],
    output: Vec<Vec<f32>>,
    to_skip: usize,
    remaining: u64,
}

impl StereoResampler {
    /// A resampler from `from` to `to` Hz for a source of exactly `source_samples` samples.
    pub fn new(from: u32, to: u32, source_samples: u64) -> Self {
        let inner = (from != to).then(|| {
            FftFixedIn::<f32>::new(from as usize, to as usize, CHUNK, 2, 2)
                .expect("rates validated by the decoder (8..=192 kHz)")
        });
        let to_skip = inner.as_ref().map_or(0, |r| r.output_delay());
        let output = inner
            .as_ref()
            .map_or_else(Vec::new, |r| r.output_buffer_allocate(true));
        Self {
            inner,
            input: [Vec::with_capacity(CHUNK * 2), Vec::with_capacity(CHUNK * 2)],
            output,
            to_skip,
            remaining: resampled_len(source_samples, from, to),
        }
    }

    /// Resamples interleaved stereo `pcm`, appending interleaved output to `out`.
    pub fn process(&mut self, pcm: &[f32], out: &mut Vec<f32>) {
        let Some(inner) = self.inner.as_mut() else {
            let take = (pcm.len() / 2).min(self.remaining as usize);
            out.extend_from_slice(&pcm[..take * 2]);
            self.remaining -= take as u64;
            return;
        };
        for f in pcm.chunks_exact(2) {
            self.input[0].push(f[0]);
            self.input[1].push(f[1]);
        }
        let mut start = 0;
        while self.input[0].len() - start >= inner.input_frames_next() {
            let n = inner.input_frames_next();
            let chunk = [
                &self.input[0][start..start + n],
                &self.input[1][start..start + n],
            ];
            let (_, produced) = inner
                .process_into_buffer(&chunk, &mut self.output, None)
                .expect("buffers sized by rubato");
            start += n;
            Self::emit(
                &self.output,
                produced,
                &mut self.to_skip,
                &mut self.remaining,
                out,
            );
        }
        self.input[0].drain(..start);
        self.input[1].drain(..start);
    }

    /// Flushes the resampler so the output reaches exactly the promised length.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        if let Some(inner) = self.inner.as_mut() {
            // Push the tail and the filter's delay out with silence.
            let mut guard = 0;
            while self.remaining > 0 && guard < 64 {
                let left = [&self.input[0][..], &self.input[1][..]];
                // rubato refuses an empty input slice; `None` means "only silence".
                let input = (!self.input[0].is_empty()).then_some(&left[..]);
                let (_, produced) = inner
                    .process_partial_into_buffer(input, &mut self.output, None)
                    .expect("buffers sized by rubato");
                self.input[0].clear();
                self.input[1].clear();
                Self::emit(
                    &self.output,
                    produced,
                    &mut self.to_skip,
                    &mut self.remaining,
                    out,
                );
                guard += 1;
            }
        }
        // Whatever is still missing (a source shorter than announced) is silence.
        out.extend(std::iter::repeat_n(0.0, self.remaining as usize * 2));
        self.remaining = 0;
    }

    fn emit(
        output: &[Vec<f32>],
        produced: usize,
        skip: &mut usize,
        remaining: &mut u64,
        out: &mut Vec<f32>,
    ) {
        let from = (*skip).min(produced);
        *skip -= from;
        let take = (produced - from).min(*remaining as usize);
        out.reserve(take * 2);
        for (l, r) in output[0][from..from + take]
            .iter()
            .zip(&output[1][from..from + take])
        {
            out.push(*l);
            out.push(*r);
        }
        *remaining -= take as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(from: u32, to: u32, n: usize) -> Vec<f32> {
        let pcm: Vec<f32> = (0..n)
            .flat_map(|i| {
                let v = (i as f32 * 1000.0 * std::f32::consts::TAU / from as f32).sin() * 0.5;
                [v, v]
            })
            .collect();
        let mut r = StereoResampler::new(from, to, n as u64);
        let mut out = Vec::new();
        for c in pcm.chunks(3001 * 2) {
            r.process(c, &mut out);
        }
        r.finish(&mut out);
        out
    }

    #[test]
    fn exact_lengths() {
        for (from, to, n) in [
            (44100, 22050, 100_001),
            (48000, 44100, 12345),
            (8000, 44100, 777),
            (44100, 44100, 5000),
            (192000, 22050, 300_000),
        ] {
            let out = run(from, to, n);
            assert_eq!(
                out.len() as u64,
                resampled_len(n as u64, from, to) * 2,
                "{from}->{to}"
            );
        }
    }

    #[test]
    fn delay_is_compensated() {
        // A 1 kHz sine at 48 kHz resampled to 44.1 kHz must match the ideal one, shifted by at
        // most half an output sample (the FFT resampler's grid), with a residual under -60 dB.
        let out = run(48000, 44100, 48000);
        let rms_at = |shift: f64| {
            let err: f64 = (2000..40000)
                .map(|i| {
                    let ideal =
                        ((i as f64 - shift) * 1000.0 * std::f64::consts::TAU / 44100.0).sin() * 0.5;
                    (f64::from(out[i * 2]) - ideal).powi(2)
                })
                .sum();
            (err / 38000.0).sqrt()
        };
        let (shift, rms) = (-10..=10)
            .map(|d| (f64::from(d) / 10.0, rms_at(f64::from(d) / 10.0)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        assert!(shift.abs() <= 0.5, "shift {shift}");
        assert!(rms < 0.0005, "rms error {rms}");
    }
}
