//! A bounds-checked reader of the GGUF container (v2/v3): metadata, tensor directory, and the
//! raw bytes of each tensor from a memory map. Every failure names the file and what was being
//! read (metadata key, tensor name), unlike candle's reader, whose errors carry neither.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;
use memmap2::Mmap;

use super::error::{ModelError, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    Uint(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Array(Vec<MetaValue>),
}

/// An f32 metadata value as the decimal its writer meant: the shortest decimal that round-trips
/// to this f32 (`1e-5`), not the f32 widened to f64 (`9.999999747378752e-6`), so a config.json
/// written from a GGUF file says `1e-5` as the HF original did. Narrowing the result to f32 gives
/// the same f32 back, so no computation changes.
pub fn f32_decimal(f: f32) -> f64 {
    if f.is_finite() {
        f.to_string().parse().unwrap_or(f64::from(f))
    } else {
        f64::from(f)
    }
}

impl MetaValue {
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            MetaValue::Uint(v) => Some(*v),
            MetaValue::Int(v) if *v >= 0 => Some(*v as u64),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            MetaValue::Float(v) => Some(*v),
            MetaValue::Uint(v) => Some(*v as f64),
            MetaValue::Int(v) => Some(*v as f64),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            MetaValue::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TensorEntry {
    pub name: String,
    /// Row-major dims (GGUF's `ne` reversed): `[out, in]` for a matrix.
    pub dims: Vec<usize>,
    /// The raw ggml type id.
    pub kind: u32,
    /// Offset from the start of the data section.
    pub offset: u64,
}

pub struct GgufFile {
    pub path: PathBuf,
    pub metadata: BTreeMap<String, MetaValue>,
    pub tensors: Vec<TensorEntry>,
    data_start: usize,
    mmap: Mmap,
}

/// The ggml type name of a type id, for messages.
pub fn kind_name(kind: u32) -> String {
    const NAMES: [&str; 31] = [
        "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K",
        "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL",
        "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16",
    ];
    NAMES
        .get(kind as usize)
        .map_or_else(|| format!("type {kind}"), |n| format!("{n} (type {kind})"))
}

/// The candle type for a ggml type id, for the types rora dequantizes.
pub fn ggml_dtype(kind: u32) -> Option<GgmlDType> {
    Some(match kind {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        30 => GgmlDType::BF16,
        _ => return None,
    })
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn bytes(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| ModelError::CorruptGguf {
                path: self.path.into(),
                reason: format!("truncated at byte {} while reading {}", self.pos, what()),
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N, what)?);
        Ok(a)
    }
    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr(what)?))
    }
    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr(what)?))
    }
    fn len(&mut self, what: &dyn Fn() -> String) -> Result<usize> {
        let n = self.u64(what)?;
        if n > (self.buf.len() - self.pos) as u64 {
            return Err(ModelError::CorruptGguf {
                path: self.path.into(),
                reason: format!(
                    "length {n} at byte {} exceeds the file while reading {}",
                    self.pos,
                    what()
                ),
            });
        }
        Ok(n as usize)
    }
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let n = self.len(what)?;
        let b = self.bytes(n, what)?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }
    fn value(&mut self, ty: u32, depth: usize, what: &dyn Fn() -> String) -> Result<MetaValue> {
        Ok(match ty {
            0 => MetaValue::Uint(u64::from(self.arr::<1>(what)?[0])),
            1 => MetaValue::Int(i64::from(i8::from_le_bytes(self.arr(what)?))),
            2 => MetaValue::Uint(u64::from(u16::from_le_bytes(self.arr(what)?))),
            3 => MetaValue::Int(i64::from(i16::from_le_bytes(self.arr(what)?))),
            4 => MetaValue::Uint(u64::from(self.u32(what)?)),
            5 => MetaValue::Int(i64::from(i32::from_le_bytes(self.arr(what)?))),
            6 => MetaValue::Float(f32_decimal(f32::from_le_bytes(self.arr(what)?))),
            7 => MetaValue::Bool(self.arr::<1>(what)?[0] != 0),
            8 => MetaValue::Str(self.string(what)?),
            9 if depth < 4 => {
                let ety = self.u32(what)?;
                let n = self.len(what)?;
                let mut v = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    v.push(self.value(ety, depth + 1, what)?);
                }
                MetaValue::Array(v)
            }
            10 => MetaValue::Uint(self.u64(what)?),
            11 => MetaValue::Int(i64::from_le_bytes(self.arr(what)?)),
            12 => MetaValue::Float(f64::from_le_bytes(self.arr(what)?)),
            _ => {
                return Err(ModelError::CorruptGguf {
                    path: self.path.into(),
                    reason: format!("unknown metadata value type {ty} in {}", what()),
                });
            }
        })
    }
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
        let mmap = crate::sys::map_readonly(&file).map_err(|e| ModelError::io(path, e))?;
        let mut c = Cursor {
            buf: &mmap,
            pos: 0,
            path,
        };
        let magic = c.arr::<4>(&|| "the magic".into())?;
        if &magic != b"GGUF" {
            return Err(ModelError::CorruptGguf {
                path: path.into(),
                reason: "missing the GGUF magic".into(),
            });
        }
        let version = c.u32(&|| "the version".into())?;
        if !(2..=3).contains(&version) {
            return Err(ModelError::CorruptGguf {
                path: path.into(),
                reason: format!("GGUF version {version} (2 or 3 supported)"),
            });
        }
        let n_tensors = c.u64(&|| "the tensor count".into())?;
        let n_kv = c.u64(&|| "the metadata count".into())?;
        let mut metadata = BTreeMap::new();
        for i in 0..n_kv {
            let key = c.string(&|| format!("metadata key #{i}"))?;
            let what = || format!("metadata `{key}`");
            let ty = c.u32(&what)?;
            let v = c.value(ty, 0, &what)?;
            metadata.insert(key, v);
        }
        let mut tensors = Vec::new();
        for i in 0..n_tensors {
            let name = c.string(&|| format!("tensor info #{i}"))?;
            let what = || format!("tensor info `{name}`");
            let nd = c.u32(&what)?;
            if nd > 4 {
                return Err(ModelError::CorruptGguf {
                    path: path.into(),
                    reason: format!("tensor `{name}` has {nd} dimensions"),
                });
            }
            let mut dims = (0..nd)
                .map(|_| c.u64(&what).map(|d| d as usize))
                .collect::<Result<Vec<_>>>()?;
            dims.reverse();
            let kind = c.u32(&what)?;
            let offset = c.u64(&what)?;
            tensors.push(TensorEntry {
                name,
                dims,
                kind,
                offset,
            });
        }
        let align = metadata
            .get("general.alignment")
            .and_then(MetaValue::as_u64)
            .unwrap_or(32)
            .max(1) as usize;
        let data_start = c.pos.div_ceil(align) * align;
        Ok(Self {
            path: path.into(),
            metadata,
            tensors,
            data_start,
            mmap,
        })
    }

    pub fn meta(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The raw bytes of a tensor and its candle type, checked against the file's size.
    pub fn raw(&self, t: &TensorEntry) -> Result<(&[u8], GgmlDType)> {
        let dtype = ggml_dtype(t.kind).ok_or_else(|| ModelError::UnsupportedQuant {
            path: self.path.clone(),
            tensor: t.name.clone(),
            kind: kind_name(t.kind),
        })?;
        let elems: usize = t.dims.iter().product();
        let bs = dtype.block_size();
        if !elems.is_multiple_of(bs) {
            return Err(ModelError::CorruptGguf {
                path: self.path.clone(),
                reason: format!(
                    "tensor `{}` has {elems} elements, not a multiple of the block size {bs}",
                    t.name
                ),
            });
        }
        let size = elems / bs * dtype.type_size();
        let start = self.data_start.saturating_add(t.offset as usize);
        let end = start.saturating_add(size);
        if end > self.mmap.len() {
            return Err(ModelError::CorruptGguf {
                path: self.path.clone(),
                reason: format!(
                    "tensor `{}` needs bytes {start}..{end} but the file has {} (truncated?)",
                    t.name,
                    self.mmap.len()
                ),
            });
        }
        Ok((&self.mmap[start..end], dtype))
    }
}

#[cfg(test)]
mod decimal_tests {
    use super::f32_decimal;

    // Python: float(numpy.float32(1e-5)) == 9.999999747378752e-06; str(numpy.float32(1e-5)) == "1e-05".
    #[test]
    fn f32_metadata_reads_as_the_decimal_it_stands_for() {
        assert_eq!(f64::from(1e-5f32), 9.999999747378752e-6);
        assert_eq!(f32_decimal(1e-5), 1e-5);
        assert_eq!(f32_decimal(1e-6), 1e-6);
        assert_eq!(f32_decimal(500000.0), 500000.0);
        assert_eq!(f32_decimal(0.1) as f32, 0.1f32);
        for x in [1e-5f32, 3.3e-7, 1.0 / 3.0, f32::MIN_POSITIVE, 7.5e37] {
            assert_eq!(f32_decimal(x) as f32, x, "{x} round-trips");
        }
        assert!(f32_decimal(f32::NAN).is_nan());
    }
}
