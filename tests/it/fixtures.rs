//! A test library made with ffmpeg (an independent encoder): several formats, rates, channel
//! counts and sample formats, plus files that must be skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::helpers::{decoded_samples, run};

/// One audio fixture and what it is.
pub struct Fixture {
    pub name: &'static str,
    pub rate: u32,
    pub channels: u16,
    pub secs: f64,
    /// Extra ffmpeg output arguments (codec, sample format, tags).
    pub args: &'static [&'static str],
}

pub const FIXTURES: &[Fixture] = &[
    Fixture {
        name: "flac/stereo44.flac",
        rate: 44100,
        channels: 2,
        secs: 13.3,
        args: &["-c:a", "flac", "-sample_fmt", "s16"],
    },
    Fixture {
        name: "flac/hires96-24bit.flac",
        rate: 96000,
        channels: 2,
        secs: 7.3,
        args: &[
            "-c:a",
            "flac",
            "-sample_fmt",
            "s32",
            "-bits_per_raw_sample",
            "24",
        ],
    },
    Fixture {
        name: "wav/mono48-24bit.wav",
        rate: 48000,
        channels: 1,
        secs: 9.5,
        args: &["-c:a", "pcm_s24le"],
    },
    Fixture {
        name: "wav/low8k.wav",
        rate: 8000,
        channels: 1,
        secs: 5.0,
        args: &["-c:a", "pcm_s16le"],
    },
    Fixture {
        name: "wav/float22k.wav",
        rate: 22050,
        channels: 2,
        secs: 6.1,
        args: &["-c:a", "pcm_f32le"],
    },
    Fixture {
        name: "wav/192k-32bit.wav",
        rate: 192000,
        channels: 2,
        secs: 3.2,
        args: &["-c:a", "pcm_s32le"],
    },
    Fixture {
        name: "mp3/tagged.mp3",
        rate: 44100,
        channels: 2,
        secs: 11.0,
        args: &[
            "-c:a",
            "libmp3lame",
            "-b:a",
            "192k",
            "-metadata",
            "title=Tagged Song",
            "-metadata",
            "artist=Test Artist",
            "-metadata",
            "album=Fixtures",
            "-metadata",
            "genre=electronic",
        ],
    },
    Fixture {
        // VBR without a Xing header: the length is known only by reading every frame (a
        // bitrate estimate from the first frame came out 1.1 s short here).
        name: "mp3/vbr-no-xing.mp3",
        rate: 44100,
        channels: 2,
        secs: 12.0,
        args: &["-c:a", "libmp3lame", "-q:a", "4", "-write_xing", "0"],
    },
    Fixture {
        // MPEG-1 Layer II, as broadcast recordings and old rips have it.
        name: "mp2/broadcast48.mp2",
        rate: 48000,
        channels: 2,
        secs: 7.3,
        args: &["-c:a", "mp2", "-b:a", "256k"],
    },
    Fixture {
        name: "m4a/aac48.m4a",
        rate: 48000,
        channels: 2,
        secs: 10.0,
        args: &["-c:a", "aac", "-b:a", "160k"],
    },
    Fixture {
        name: "ogg/vorbis32.ogg",
        rate: 32000,
        channels: 2,
        secs: 8.0,
        args: &["-c:a", "libvorbis", "-q:a", "4"],
    },
    Fixture {
        // Opus always decodes at 48 kHz; a length that is no whole number of 20 ms packets, so
        // the end trim (the last page's granule position) and the pre-skip both count.
        name: "opus/stereo.opus",
        rate: 48000,
        channels: 2,
        secs: 7.77,
        args: &["-c:a", "libopus", "-b:a", "128k"],
    },
    Fixture {
        // Speech settings at a low bitrate: libopus codes this in its SILK and hybrid modes,
        // where the music above is CELT.
        name: "opus/mono-voice.opus",
        rate: 48000,
        channels: 1,
        secs: 6.3,
        args: &["-c:a", "libopus", "-application", "voip", "-b:a", "20k"],
    },
];

pub struct Library {
    pub root: PathBuf,
}

impl Library {
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Samples per channel of a fixture as ffmpeg decodes it, at its own rate.
    pub fn reference_samples(&self, f: &Fixture) -> u64 {
        decoded_samples(self.path(f.name).to_str().unwrap(), f.rate).0
    }
}

/// The shared fixture library (built once per test run).
pub fn library() -> &'static Library {
    static LIB: OnceLock<Library> = OnceLock::new();
    LIB.get_or_init(|| {
        let root = crate::helpers::workspace_tmp().join(format!("fixtures-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for f in FIXTURES {
            make(&root, f);
        }
        // Files the scanner must skip, with a warning, without stopping.
        std::fs::write(root.join("notes.txt"), "not audio\n").unwrap();
        std::fs::write(root.join("broken.mp3"), vec![0x55u8; 4096]).unwrap();
        std::fs::write(root.join("empty.flac"), b"").unwrap();
        // A link that leads out of the library must not be followed into the catalogue.
        let outside =
            crate::helpers::workspace_tmp().join(format!("outside-{}.wav", std::process::id()));
        std::fs::copy(root.join("wav/low8k.wav"), &outside).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&outside, root.join("escape.wav")).unwrap();
        Library { root }
    })
}

/// Music-like content: a chord that changes, a pulse and some noise, so encoders work for real.
fn make(root: &Path, f: &Fixture) {
    let path = root.join(f.name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let layout = if f.channels == 1 { "mono" } else { "stereo" };
    // A chord that changes every 2 s, a tremolo voice and a plucked high note; the right channel
    // is a little detuned so stereo is real stereo.
    let voice = |detune: f64| {
        format!(
            "0.25*sin(2*PI*(220+110*floor(t/2))*t)+0.2*sin(2*PI*330*t)*(0.5+0.5*sin(2*PI*2*t))+0.1*sin(2*PI*{}*t)*exp(-5*mod(t\\,0.5))",
            880.0 + detune
        )
    };
    let exprs = if f.channels == 1 {
        voice(0.0)
    } else {
        format!("{}|{}", voice(0.0), voice(7.0))
    };
    let src = format!("aevalsrc=exprs='{exprs}':s={}:d={}", f.rate, f.secs);
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", &src, "-f", "lavfi", "-i",
    ])
    .arg(format!("anoisesrc=c=pink:a=0.03:r={}:d={}", f.rate, f.secs))
    .args([
        "-filter_complex",
        &format!("[0][1]amix=inputs=2:normalize=0,aformat=channel_layouts={layout}"),
    ])
    .args(["-ar", &f.rate.to_string()])
    .args(f.args)
    .arg(&path);
    run(&mut cmd);
}
