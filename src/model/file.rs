//! The model file (`*.lgm`): a magic line, a JSON header saying what the weights mean, the
//! weights quantised to one signed byte each (a scale per table), and a checksum. Written by
//! `liveguard train`, read at load and on every reload; anything unexpected is a clear error
//! and the last good model keeps running.
//!
//! ```text
//! b"LGMODEL\n" | u32 LE header length | header JSON | i8 class table | i8 topic table | u64 LE FNV-1a
//! ```

use serde::{Deserialize, Serialize};

use super::{features, Model, ModelInfo, TOPICS};
use crate::taxonomy::Topic;

/// First bytes of every model file.
pub const MAGIC: &[u8; 8] = b"LGMODEL\n";
/// The file layout this binary reads and writes.
pub const FORMAT: u32 = 2;
/// Table sizes a file may ask for (bits of the row index).
const BITS_RANGE: std::ops::RangeInclusive<u32> = 8..=22;

/// Why a model file was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelError {
    /// Not a liveguard model.
    #[error("not a liveguard model file (bad magic)")]
    Magic,
    /// Cut short or with bytes past the end.
    #[error("model file is {got} bytes, its header says {want}")]
    Size {
        /// Actual size.
        got: usize,
        /// Size the header implies.
        want: usize,
    },
    /// The checksum does not match (a partial copy, a corrupted file).
    #[error("model checksum mismatch (file damaged or partly written)")]
    Checksum,
    /// The header is not valid JSON of the expected shape.
    #[error("model header: {0}")]
    Header(String),
    /// Written by a newer or older layout or feature extractor.
    #[error("model {what} version {got} is not supported (this binary reads {want})")]
    Version {
        /// Which version.
        what: &'static str,
        /// In the file.
        got: u32,
        /// Supported.
        want: u32,
    },
    /// A field is out of range.
    #[error("model header field {field}: {message}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: u32,
    features: u32,
    bits: u32,
    topic_bits: u32,
    classes: Vec<String>,
    topics: Vec<String>,
    class_scale: f32,
    topic_scale: f32,
    class_bias: Vec<f32>,
    topic_bias: Vec<f32>,
    items: usize,
    seed: u64,
    epochs: u32,
    data: Vec<(String, usize)>,
    known_groups: Vec<u64>,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn quantise(w: impl Iterator<Item = f32> + Clone) -> (f32, Vec<i8>) {
    let max = w.clone().fold(0.0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    let q = w
        .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (scale, q)
}

impl Model {
    /// Builds a model from float tables (training); the weights are quantised exactly as a
    /// written file would be, so a model scores the same before and after a round trip.
    pub(crate) fn from_floats(
        bits: u32,
        topic_bits: u32,
        class_w: &[[f32; 3]],
        class_bias: [f32; 3],
        topic_w: &[f32],
        topic_bias: [f32; TOPICS],
        info: ModelInfo,
    ) -> Self {
        let (cs, cq) = quantise(class_w.iter().flat_map(|r| r.iter().copied()));
        let (ts, tq) = quantise(topic_w.iter().copied());
        Self::from_quantised(
            bits,
            topic_bits,
            (cs, &cq),
            class_bias,
            (ts, &tq),
            topic_bias,
            info,
        )
    }

    fn from_quantised(
        bits: u32,
        topic_bits: u32,
        (cs, cq): (f32, &[i8]),
        class_bias: [f32; 3],
        (ts, tq): (f32, &[i8]),
        topic_bias: [f32; TOPICS],
        info: ModelInfo,
    ) -> Self {
        let class_w = cq.chunks_exact(3).map(|r| [r[0], r[1], r[2], 0]).collect();
        Self {
            bits,
            topic_bits,
            class_w,
            class_scale: cs,
            class_bias,
            topic_w: tq.to_vec(),
            topic_scale: ts,
            topic_bias,
            info,
        }
    }

    /// The file's bytes. Deterministic: the same model always gives the same bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (cs, ts) = (self.class_scale, self.topic_scale);
        let cq: Vec<i8> = self.class_w.iter().flat_map(|r| r[..3].iter().copied()).collect();
        let tq = &self.topic_w;
        let header = Header {
            format: FORMAT,
            features: features::VERSION,
            bits: self.bits,
            topic_bits: self.topic_bits,
            classes: super::CLASSES.iter().map(|c| c.as_str().to_string()).collect(),
            topics: Topic::ALL.iter().map(|t| t.as_str().to_string()).collect(),
            class_scale: cs,
            topic_scale: ts,
            class_bias: self.class_bias.to_vec(),
            topic_bias: self.topic_bias.to_vec(),
            items: self.info.items,
            seed: self.info.seed,
            epochs: self.info.epochs,
            data: self.info.data.clone(),
            known_groups: self.info.known_groups.clone(),
        };
        let json = serde_json::to_vec(&header).expect("the header is plain data");
        let mut out = Vec::with_capacity(16 + json.len() + cq.len() + tq.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        out.extend(cq.iter().map(|&q| q as u8));
        out.extend(tq.iter().map(|&q| q as u8));
        let sum = fnv1a(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Reads and checks a model file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        if bytes.len() < MAGIC.len() + 4 + 8 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(ModelError::Magic);
        }
        let (body, sum) = bytes.split_at(bytes.len() - 8);
        let hlen_at = MAGIC.len();
        let hlen = u32::from_le_bytes(
            body[hlen_at..hlen_at + 4]
                .try_into()
                .expect("four bytes were sliced"),
        ) as usize;
        let hstart = hlen_at + 4;
        let Some(hbytes) = body.get(hstart..hstart.saturating_add(hlen)) else {
            return Err(ModelError::Size {
                got: bytes.len(),
                want: hstart.saturating_add(hlen) + 8,
            });
        };
        let header: Header = serde_json::from_slice(hbytes).map_err(|e| ModelError::Header(e.to_string()))?;
        if header.format != FORMAT {
            return Err(ModelError::Version {
                what: "format",
                got: header.format,
                want: FORMAT,
            });
        }
        if header.features != features::VERSION {
            return Err(ModelError::Version {
                what: "feature",
                got: header.features,
                want: features::VERSION,
            });
        }
        for (field, b) in [("bits", header.bits), ("topic_bits", header.topic_bits)] {
            if !BITS_RANGE.contains(&b) {
                return Err(ModelError::Field {
                    field,
                    message: format!("{b} is outside {BITS_RANGE:?}"),
                });
            }
        }
        let classes: Vec<&str> = super::CLASSES.iter().map(|c| c.as_str()).collect();
        if header.classes != classes {
            return Err(ModelError::Field {
                field: "classes",
                message: format!("{:?}, expected {classes:?}", header.classes),
            });
        }
        // Topics are matched by name: the file's order need not be ours.
        let mut topic_of = Vec::with_capacity(header.topics.len());
        for name in &header.topics {
            match Topic::parse(name) {
                Some(t) => topic_of.push(t as usize),
                None => {
                    return Err(ModelError::Field {
                        field: "topics",
                        message: format!("unknown topic {name:?}"),
                    })
                }
            }
        }
        let nt = header.topics.len();
        if header.class_bias.len() != 3 || header.topic_bias.len() != nt {
            return Err(ModelError::Field {
                field: "class_bias/topic_bias",
                message: "wrong number of entries".into(),
            });
        }
        for (field, s) in [
            ("class_scale", header.class_scale),
            ("topic_scale", header.topic_scale),
        ] {
            if !(s.is_finite() && s > 0.0) {
                return Err(ModelError::Field {
                    field,
                    message: format!("{s} is not a positive number"),
                });
            }
        }
        let rows = 1usize << header.bits;
        let trows = 1usize << header.topic_bits;
        let wstart = hstart + hlen;
        let want = wstart + rows * 3 + trows * nt + 8;
        if bytes.len() != want {
            return Err(ModelError::Size {
                got: bytes.len(),
                want,
            });
        }
        if fnv1a(body).to_le_bytes() != sum {
            return Err(ModelError::Checksum);
        }
        let cq: Vec<i8> = body[wstart..wstart + rows * 3].iter().map(|&b| b as i8).collect();
        // Re-order the topic table into our topic order.
        let mut tq = vec![0i8; trows * TOPICS];
        let traw = &body[wstart + rows * 3..wstart + rows * 3 + trows * nt];
        for (r, row) in traw.chunks_exact(nt).enumerate() {
            for (k, &b) in row.iter().enumerate() {
                tq[r * TOPICS + topic_of[k]] = b as i8;
            }
        }
        let mut topic_bias = [0.0; TOPICS];
        for (k, &b) in header.topic_bias.iter().enumerate() {
            topic_bias[topic_of[k]] = b;
        }
        let class_bias = [header.class_bias[0], header.class_bias[1], header.class_bias[2]];
        let mut known_groups = header.known_groups;
        known_groups.sort_unstable();
        let info = ModelInfo {
            items: header.items,
            seed: header.seed,
            epochs: header.epochs,
            data: header.data,
            known_groups,
        };
        Ok(Self::from_quantised(
            header.bits,
            header.topic_bits,
            (header.class_scale, &cq),
            class_bias,
            (header.topic_scale, &tq),
            topic_bias,
            info,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Model {
        let class_w: Vec<[f32; 3]> = (0..256).map(|i| [i as f32 / 100.0, -0.5, 0.25]).collect();
        let topic_w: Vec<f32> = (0..256 * TOPICS).map(|i| (i % 7) as f32 - 3.0).collect();
        Model::from_floats(
            8,
            8,
            &class_w,
            [0.1, 0.2, 0.3],
            &topic_w,
            [0.0; TOPICS],
            ModelInfo::default(),
        )
    }

    #[test]
    fn round_trip_is_exact() {
        let m = tiny();
        let bytes = m.to_bytes();
        let back = Model::from_bytes(&bytes).expect("reads back");
        assert_eq!(back.to_bytes(), bytes);
        assert_eq!(back.class_w, m.class_w);
        assert_eq!(back.topic_w, m.topic_w);
    }

    #[test]
    fn damage_is_named() {
        let bytes = tiny().to_bytes();
        assert_eq!(Model::from_bytes(b"hello").err(), Some(ModelError::Magic));
        let mut flipped = bytes.clone();
        let at = flipped.len() - 20;
        flipped[at] ^= 1;
        assert_eq!(Model::from_bytes(&flipped).err(), Some(ModelError::Checksum));
        let cut = &bytes[..bytes.len() - 100];
        assert!(matches!(Model::from_bytes(cut), Err(ModelError::Size { .. })));
        let mut newer = bytes.clone();
        let at = newer
            .windows(10)
            .position(|w| w == b"\"format\":2")
            .expect("the header names its format");
        newer[at + 9] = b'9';
        assert!(matches!(
            Model::from_bytes(&newer),
            Err(ModelError::Version {
                what: "format",
                got: 9,
                ..
            })
        ));
    }
}
