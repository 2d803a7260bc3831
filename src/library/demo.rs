//! The demo library: a few short pieces of synthesised music, so a fresh machine has something
//! real to play (chords, bass, arpeggios, drums; stereo; not silence, not a sine).
//!
//! Written as WAV with a RIFF `LIST/INFO` chunk carrying title, artist, album and genre, so the
//! tags path of the scanner is exercised too. Generation is deterministic.

use std::f32::consts::TAU;
use std::io::Write as _;
use std::path::{Path, PathBuf};

struct Piece {
    file: &'static str,
    title: &'static str,
    artist: &'static str,
    genre: &'static str,
    bpm: f32,
    /// MIDI note of the key's root.
    root: i32,
    /// Chord roots as scale offsets (semitones) and whether minor.
    progression: [(i32, bool); 4],
    bars: usize,
    rate: u32,
    channels: u16,
    seed: u32,
}

const ALBUM: &str = "stream-server demo";

const PIECES: [Piece; 4] = [
    Piece {
        file: "Neon Pulse - Night Drive.wav",
        title: "Night Drive",
        artist: "Neon Pulse",
        genre: "electronic",
        bpm: 112.0,
        root: 45,
        progression: [(0, true), (8, false), (3, false), (10, false)],
        bars: 20,
        rate: 44100,
        channels: 2,
        seed: 7,
    },
    Piece {
        file: "DJ Sunshine - Summer Vibes.wav",
        title: "Summer Vibes",
        artist: "DJ Sunshine",
        genre: "house",
        bpm: 124.0,
        root: 48,
        progression: [(0, false), (7, false), (9, true), (5, false)],
        bars: 24,
        rate: 44100,
        channels: 2,
        seed: 11,
    },
    Piece {
        file: "Quiet Rooms/Slow Tide.wav",
        title: "Slow Tide",
        artist: "Quiet Rooms",
        genre: "ambient",
        bpm: 84.0,
        root: 50,
        progression: [(0, false), (5, false), (9, true), (7, false)],
        bars: 12,
        rate: 48000,
        channels: 1,
        seed: 23,
    },
    Piece {
        file: "Quiet Rooms/Paper Lanterns.wav",
        title: "Paper Lanterns",
        artist: "Quiet Rooms",
        genre: "lo-fi",
        bpm: 90.0,
        root: 52,
        progression: [(0, true), (5, true), (10, false), (3, false)],
        bars: 14,
        rate: 44100,
        channels: 2,
        seed: 31,
    },
];

/// Writes the demo library into `dir` (skipping files already there). Returns the folder.
pub fn ensure_demo_library(dir: &Path) -> std::io::Result<PathBuf> {
    for piece in &PIECES {
        let path = dir.join(piece.file);
        if path.exists() {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let samples = render(piece);
        let tmp = path.with_extension("wav.tmp");
        write_wav(&tmp, piece, &samples)?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(dir.to_path_buf())
}

fn midi_hz(note: f32) -> f32 {
    440.0 * 2f32.powf((note - 69.0) / 12.0)
}

/// Small deterministic noise source (xorshift32).
struct Noise(u32);
impl Noise {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        (self.0 as f32 / u32::MAX as f32) * 2.0 - 1.0
    }
}

/// Band-limited sawtooth from its first harmonics.
fn saw(phase: f32, harmonics: u32) -> f32 {
    (1..=harmonics)
        .map(|k| (phase * k as f32).sin() / k as f32)
        .sum::<f32>()
        * 0.6
}

/// Renders interleaved stereo samples in [-1, 1].
fn render(p: &Piece) -> Vec<f32> {
    let rate = p.rate as f32;
    let beat = 60.0 / p.bpm;
    let bar = beat * 4.0;
    let total = (p.bars as f32 * bar + 2.0) as usize * p.rate as usize;
    let mut out = vec![0f32; total * 2];
    let mut noise = Noise(0x9e37_79b9 ^ p.seed);
    let mut hat_lp = 0.0f32;
    let fade_in = bar * 2.0;
    let end = p.bars as f32 * bar;

    for i in 0..total {
        let t = i as f32 / rate;
        let bar_idx = (t / bar) as usize;
        let (offset, minor) = p.progression[bar_idx % 4];
        let chord_root = (p.root + offset) as f32;
        let third = if minor { 3.0 } else { 4.0 };
        let tones = [
            chord_root + 12.0,
            chord_root + 12.0 + third,
            chord_root + 19.0,
        ];
        let in_bar = t % bar;
        let in_beat = t % beat;
        let section = bar_idx * 4 / p.bars.max(1); // 0..3: intro, A, B, outro
        let level = (t / fade_in).min(1.0) * ((end + 2.0 - t) / 3.0).clamp(0.0, 1.0);

        // Pad: detuned saws, slow attack at every chord change.
        let pad_env = (in_bar / 0.6).min(1.0) * 0.16;
        let (mut l, mut r) = (0.0, 0.0);
        for (k, n) in tones.iter().enumerate() {
            let f = midi_hz(*n);
            l += saw(TAU * f * 0.997 * t + k as f32, 6) * pad_env;
            r += saw(TAU * f * 1.003 * t + k as f32 * 2.0, 6) * pad_env;
        }

        // Bass: root on eighth notes with a plucked envelope, from the first section on.
        if section >= 1 || p.bars < 8 {
            let eighth = beat / 2.0;
            let te = t % eighth;
            let f = midi_hz(chord_root - 12.0);
            let b =
                ((TAU * f * t).sin() + 0.4 * (TAU * 2.0 * f * t).sin()) * (-te * 7.0).exp() * 0.32;
            l += b;
            r += b;
        }

        // Arpeggio: chord tones in sixteenths, panned left/right in turn.
        let sixteenth = beat / 4.0;
        let step = (t / sixteenth) as usize;
        let ts = t % sixteenth;
        let note =
            tones[(step * (1 + p.seed as usize % 2)) % 3] + if step % 8 >= 6 { 12.0 } else { 0.0 };
        let f = midi_hz(note);
        let arp =
            ((TAU * f * t).sin() + 0.3 * (TAU * 3.0 * f * t).sin()) * (-ts * 18.0).exp() * 0.13;
        if section != 0 {
            if step % 2 == 0 {
                l += arp;
                r += arp * 0.5;
            } else {
                l += arp * 0.5;
                r += arp;
            }
        }

        // Drums (not in the ambient piece's intro): kick on 1 and 3, snare on 2 and 4, hats.
        if p.genre != "ambient" && section >= 1 && t < end {
            let beat_no = (in_bar / beat) as usize;
            if beat_no % 2 == 0 || p.genre == "house" {
                let kf = 45.0 + 90.0 * (-in_beat * 30.0).exp();
                let k = (TAU * kf * in_beat).sin() * (-in_beat * 9.0).exp() * 0.55;
                l += k;
                r += k;
            }
            let n = noise.next();
            if beat_no % 2 == 1 {
                let s =
                    (n * 0.6 + (TAU * 185.0 * in_beat).sin() * 0.4) * (-in_beat * 16.0).exp() * 0.3;
                l += s;
                r += s;
            }
            // Hat: high-passed noise on eighths.
            hat_lp += 0.25 * (n - hat_lp);
            let th = t % (beat / 2.0);
            let h = (n - hat_lp) * (-th * 60.0).exp() * 0.12;
            l += h * 0.7;
            r += h;
        }

        out[i * 2] = (l * level).tanh() * 0.9;
        out[i * 2 + 1] = (r * level).tanh() * 0.9;
    }
    out
}

fn write_wav(path: &Path, p: &Piece, stereo: &[f32]) -> std::io::Result<()> {
    let mut info = Vec::new();
    for (id, value) in [
        (b"INAM", p.title),
        (b"IART", p.artist),
        (b"IPRD", ALBUM),
        (b"IGNR", p.genre),
    ] {
        let mut v = value.as_bytes().to_vec();
        v.push(0);
        if v.len() % 2 == 1 {
            v.push(0);
        }
        info.extend_from_slice(id);
        info.extend_from_slice(&(v.len() as u32).to_le_bytes());
        info.extend_from_slice(&v);
    }
    let pcm: Vec<u8> = if p.channels == 1 {
        stereo
            .chunks_exact(2)
            .flat_map(|f| to_i16((f[0] + f[1]) * 0.5).to_le_bytes())
            .collect()
    } else {
        stereo
            .iter()
            .flat_map(|s| to_i16(*s).to_le_bytes())
            .collect()
    };
    let block_align = p.channels * 2;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    let list_len = 4 + info.len() as u32;
    let riff_len = 4 + (8 + 16) + (8 + list_len) + (8 + pcm.len() as u32);
    w.write_all(b"RIFF")?;
    w.write_all(&riff_len.to_le_bytes())?;
    w.write_all(b"WAVEfmt ")?;
    w.write_all(&16u32.to_le_bytes())?;
    w.write_all(&1u16.to_le_bytes())?; // PCM
    w.write_all(&p.channels.to_le_bytes())?;
    w.write_all(&p.rate.to_le_bytes())?;
    w.write_all(&(p.rate * u32::from(block_align)).to_le_bytes())?;
    w.write_all(&block_align.to_le_bytes())?;
    w.write_all(&16u16.to_le_bytes())?;
    // INFO before data: that is where symphonia's WAV reader looks for it.
    w.write_all(b"LIST")?;
    w.write_all(&list_len.to_le_bytes())?;
    w.write_all(b"INFO")?;
    w.write_all(&info)?;
    w.write_all(b"data")?;
    w.write_all(&(pcm.len() as u32).to_le_bytes())?;
    w.write_all(&pcm)?;
    w.flush()
}

fn to_i16(s: f32) -> i16 {
    (s * 32767.0).round().clamp(-32768.0, 32767.0) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_is_music_not_silence_nor_a_sine() {
        let samples = render(&PIECES[0]);
        let rms = (samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32).sqrt();
        assert!(rms > 0.05, "rms {rms}");
        // A pure tone has almost all its energy at one zero-crossing rate; music varies. Compare
        // zero-crossing rates across one-second windows.
        let zcr: Vec<usize> = samples
            .chunks(44100 * 2)
            .map(|w| {
                w.chunks_exact(2)
                    .collect::<Vec<_>>()
                    .windows(2)
                    .filter(|p| (p[0][0] >= 0.0) != (p[1][0] >= 0.0))
                    .count()
            })
            .collect();
        let min = zcr.iter().min().unwrap();
        let max = zcr.iter().max().unwrap();
        assert!(max > &(min * 2), "{zcr:?}");
        // Left and right differ (stereo).
        assert!(samples.chunks_exact(2).any(|f| (f[0] - f[1]).abs() > 0.01));
    }

    #[test]
    fn demo_library_scans_with_tags() {
        let dir = tempfile::tempdir().unwrap();
        ensure_demo_library(dir.path()).unwrap();
        let report = crate::library::scan::scan(dir.path(), None, 3600, 2).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.tracks.len(), PIECES.len());
        let t = report
            .tracks
            .iter()
            .find(|t| t.title == "Night Drive")
            .unwrap();
        assert_eq!(t.artist.as_deref(), Some("Neon Pulse"));
        assert_eq!(t.genre.as_deref(), Some("electronic"));
        assert_eq!(t.album.as_deref(), Some(ALBUM));
        let mono = report
            .tracks
            .iter()
            .find(|t| t.title == "Slow Tide")
            .unwrap();
        assert_eq!((mono.channels, mono.sample_rate), (1, 48000));
    }
}
