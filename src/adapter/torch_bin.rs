//! Writing a `dict[str, Tensor]` as `torch.save` does (`adapter_model.bin`), for tools that read
//! only that file (LLM-Adapters' vendored PEFT loads adapters with `torch.load`).
//!
//! The layout is torch's zip serialization (`torch/serialization.py`, `_save`; format version 3):
//! an uncompressed zip whose entries are `archive/data.pkl` (a protocol-2 pickle of the dict, each
//! tensor `torch._utils._rebuild_tensor_v2(storage, 0, shape, stride, False, OrderedDict())` with
//! the storage as persistent id `('storage', torch.FloatStorage, '<n>', 'cpu', numel)`),
//! `archive/byteorder` (`little`), `archive/data/<n>` (the raw little-endian f32 values, aligned
//! to 64 bytes as torch aligns them) and `archive/version` (`3`). Only the globals `torch.load`'s
//! `weights_only` unpickler allows are used. Reading is `candle_core::pickle::read_all`.

use candle_core::{DType, Tensor};

/// The bytes of `torch.save({name: tensor, ...})` for f32 tensors, in the given order.
pub fn serialize(tensors: &[(String, Tensor)]) -> candle_core::Result<Vec<u8>> {
    let mut pkl = vec![0x80, 2, b'}', b'(']; // PROTO 2, EMPTY_DICT, MARK
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    let mut storages: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, (name, t)) in tensors.iter().enumerate() {
        let t = t.to_dtype(DType::F32)?.contiguous()?;
        let values: Vec<f32> = t.flatten_all()?.to_vec1()?;
        let numel = values.len();
        unicode(&mut pkl, name);
        global(&mut pkl, "torch._utils", "_rebuild_tensor_v2");
        pkl.push(b'('); // MARK: the call's arguments
        pkl.push(b'('); // MARK: the persistent id
        unicode(&mut pkl, "storage");
        global(&mut pkl, "torch", "FloatStorage");
        unicode(&mut pkl, &i.to_string());
        unicode(&mut pkl, "cpu");
        int(&mut pkl, numel)?;
        pkl.extend_from_slice(b"tQ"); // TUPLE, BINPERSID
        int(&mut pkl, 0)?; // storage offset
        let dims = t.dims().to_vec();
        let mut stride = vec![1usize; dims.len()];
        for d in (0..dims.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * dims[d + 1];
        }
        for v in [&dims, &stride] {
            pkl.push(b'(');
            for x in v.iter() {
                int(&mut pkl, *x)?;
            }
            pkl.push(b't');
        }
        pkl.push(0x89); // NEWFALSE: requires_grad
        global(&mut pkl, "collections", "OrderedDict");
        pkl.extend_from_slice(b")R"); // EMPTY_TUPLE, REDUCE: OrderedDict()
        pkl.extend_from_slice(b"tR"); // TUPLE, REDUCE: _rebuild_tensor_v2(...)
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        storages.push((format!("archive/data/{i}"), bytes));
    }
    pkl.extend_from_slice(b"u."); // SETITEMS, STOP
    entries.push(("archive/data.pkl".into(), pkl));
    entries.push(("archive/byteorder".into(), b"little".to_vec()));
    entries.extend(storages);
    entries.push(("archive/version".into(), b"3\n".to_vec()));
    Ok(zip_stored(&entries))
}

fn unicode(out: &mut Vec<u8>, s: &str) {
    out.push(b'X'); // BINUNICODE
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn global(out: &mut Vec<u8>, module: &str, name: &str) {
    out.push(b'c');
    out.extend_from_slice(module.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
}

fn int(out: &mut Vec<u8>, v: usize) -> candle_core::Result<()> {
    let Ok(v) = i32::try_from(v) else {
        candle_core::bail!("{v} does not fit a pickle BININT");
    };
    out.push(b'J');
    out.extend_from_slice(&v.to_le_bytes());
    Ok(())
}

/// An uncompressed zip of `(name, bytes)` entries, each entry's data aligned to 64 bytes with
/// padding in the local header's extra field (as torch's `PyTorchStreamWriter` writes them).
fn zip_stored(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    const ALIGN: usize = 64;
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len();
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let crc = crc.sum();
        let header_len = 30 + name.len();
        // the extra field is at least its 4-byte header
        let pad = (ALIGN - (offset + header_len + 4) % ALIGN) % ALIGN;
        let extra_len = 4 + pad;
        let size = data.len() as u32;
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        for v in [20u16, 0, 0, 0, 0] {
            // version needed, flags, method (stored), time, date
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&(extra_len as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&0x4246u16.to_le_bytes()); // "FB", torch's padding record
        out.extend_from_slice(&(pad as u16).to_le_bytes());
        out.extend(std::iter::repeat_n(b'Z', pad));
        out.extend_from_slice(data);

        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        for v in [20u16, 20, 0, 0, 0, 0] {
            // made by, needed, flags, method, time, date
            central.extend_from_slice(&v.to_le_bytes());
        }
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        for v in [0u16, 0, 0, 0] {
            // extra, comment, disk, internal attributes
            central.extend_from_slice(&v.to_le_bytes());
        }
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&(offset as u32).to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let dir_offset = out.len() as u32;
    let dir_len = central.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    for v in [0u16, 0, entries.len() as u16, entries.len() as u16] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&dir_len.to_le_bytes());
    out.extend_from_slice(&dir_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    // Reference: candle's reader of torch files (candle_core::pickle), which reads what torch.save
    // writes; the Python-gated interop test loads the same bytes with torch.load(weights_only=True).
    #[test]
    fn candle_reads_back_what_is_written() {
        let a = Tensor::arange(0f32, 6.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3))
            .unwrap();
        let b = Tensor::new(&[0.5f32], &Device::Cpu).unwrap();
        let bytes =
            serialize(&[("x.adapter_down.weight".into(), a.clone()), ("s".into(), b)]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("adapter_model.bin");
        std::fs::write(&path, &bytes).unwrap();
        let mut got = candle_core::pickle::read_all(&path).unwrap();
        got.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(got[0].0, "s");
        assert_eq!(got[0].1.to_vec1::<f32>().unwrap(), vec![0.5]);
        assert_eq!(got[1].0, "x.adapter_down.weight");
        assert_eq!(got[1].1.dims(), &[2, 3]);
        assert_eq!(
            got[1].1.to_vec2::<f32>().unwrap(),
            a.to_vec2::<f32>().unwrap()
        );
    }
}
