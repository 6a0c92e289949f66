//! NumPy .npy files (format versions 1-3): f32/f64 and integer arrays, C or Fortran order.
//! Data is widened to f64; the dtype it came from is kept so outputs can match inputs.

use std::fmt;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    F64,
    I64,
    I32,
    U8,
    Bool,
}

impl DType {
    fn descr(self) -> &'static str {
        match self {
            DType::F32 => "<f4",
            DType::F64 => "<f8",
            DType::I64 => "<i8",
            DType::I32 => "<i4",
            DType::U8 => "|u1",
            DType::Bool => "|b1",
        }
    }
    fn width(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::U8 | DType::Bool => 1,
        }
    }
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::U8 => "uint8",
            DType::Bool => "bool",
        })
    }
}

/// An array read from or to be written to a .npy file, in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
    pub dtype: DType,
}

#[derive(Debug)]
pub struct NpyError(pub String);

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for NpyError {}

const MAGIC: &[u8] = b"\x93NUMPY";

fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else if let Some(quoted) = rest.strip_prefix('\'') {
        quoted.find('\'')? + 2
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

impl NpyArray {
    pub fn new(shape: Vec<usize>, data: Vec<f64>, dtype: DType) -> Self {
        NpyArray { shape, data, dtype }
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, NpyError> {
        let bad = |m: &str| NpyError(m.to_string());
        if bytes.len() < 10 || &bytes[..6] != MAGIC {
            return Err(bad("not a .npy file (bad magic bytes)"));
        }
        let (header_len, start) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
            v => return Err(NpyError(format!("unsupported .npy format version {v}"))),
        };
        let header = bytes.get(start..start + header_len).ok_or_else(|| bad("truncated .npy header"))?;
        let header = std::str::from_utf8(header).map_err(|_| bad("the .npy header is not text"))?;
        let descr = header_value(header, "descr").ok_or_else(|| bad("the .npy header has no 'descr'"))?;
        let descr = descr.trim_matches('\'');
        let (big_endian, code) = match descr.as_bytes().first() {
            Some(b'>') => (true, &descr[1..]),
            Some(b'<' | b'|' | b'=') => (false, &descr[1..]),
            _ => (false, descr),
        };
        let dtype = match code {
            "f4" => DType::F32,
            "f8" => DType::F64,
            "i8" => DType::I64,
            "i4" => DType::I32,
            "u1" => DType::U8,
            "b1" => DType::Bool,
            _ => return Err(NpyError(format!("unsupported dtype '{descr}' (expected float32 or float64)"))),
        };
        let fortran = header_value(header, "fortran_order")
            .ok_or_else(|| bad("the .npy header has no 'fortran_order'"))?
            == "True";
        let shape_txt = header_value(header, "shape").ok_or_else(|| bad("the .npy header has no 'shape'"))?;
        let shape: Vec<usize> = shape_txt
            .trim_matches(|c| c == '(' || c == ')')
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| NpyError(format!("bad shape {shape_txt} in the .npy header"))))
            .collect::<Result<_, _>>()?;
        let n: usize = shape.iter().product();
        let body = &bytes[start + header_len..];
        let need = n * dtype.width();
        if body.len() != need {
            return Err(NpyError(format!(
                "the .npy data holds {} bytes, shape {:?} of {dtype} needs {need}",
                body.len(),
                shape
            )));
        }
        let word = |b: &[u8]| -> [u8; 8] {
            let mut w = [0u8; 8];
            w[..b.len()].copy_from_slice(b);
            if big_endian {
                w[..b.len()].reverse();
            }
            w
        };
        let data: Vec<f64> = body
            .chunks_exact(dtype.width())
            .map(|b| {
                let w = word(b);
                match dtype {
                    DType::F32 => f32::from_le_bytes([w[0], w[1], w[2], w[3]]) as f64,
                    DType::F64 => f64::from_le_bytes(w),
                    DType::I64 => i64::from_le_bytes(w) as f64,
                    DType::I32 => i32::from_le_bytes([w[0], w[1], w[2], w[3]]) as f64,
                    DType::U8 | DType::Bool => w[0] as f64,
                }
            })
            .collect();
        let mut arr = NpyArray { shape, data, dtype };
        if fortran && arr.shape.len() > 1 {
            arr.data = fortran_to_c(&arr.data, &arr.shape);
        }
        Ok(arr)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let shape = match self.shape.len() {
            1 => format!("({},)", self.shape[0]),
            _ => format!("({})", self.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
        };
        let mut header = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}", self.dtype.descr());
        // Pad so that the data starts on a 64-byte boundary, header ends with a newline.
        let total = MAGIC.len() + 4 + header.len() + 1;
        header.push_str(&" ".repeat((64 - total % 64) % 64));
        header.push('\n');
        let mut out = Vec::with_capacity(10 + header.len() + self.data.len() * self.dtype.width());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        for &v in &self.data {
            match self.dtype {
                DType::F32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
                DType::F64 => out.extend_from_slice(&v.to_le_bytes()),
                DType::I64 => out.extend_from_slice(&(v as i64).to_le_bytes()),
                DType::I32 => out.extend_from_slice(&(v as i32).to_le_bytes()),
                DType::U8 | DType::Bool => out.push(v as u8),
            }
        }
        out
    }

    pub fn read(path: &Path) -> Result<Self, NpyError> {
        let bytes = std::fs::read(path).map_err(|e| NpyError(format!("{}: {e}", path.display())))?;
        Self::parse(&bytes).map_err(|e| NpyError(format!("{}: {e}", path.display())))
    }

    pub fn write(&self, path: &Path) -> Result<(), NpyError> {
        std::fs::write(path, self.to_bytes()).map_err(|e| NpyError(format!("{}: {e}", path.display())))
    }
}

fn fortran_to_c(data: &[f64], shape: &[usize]) -> Vec<f64> {
    // Fortran order is the C order of the reversed shape; transpose back.
    let rev: Vec<usize> = shape.iter().rev().copied().collect();
    let perm: Vec<usize> = (0..shape.len()).rev().collect();
    lipcert_core::kernels::transpose_gather_index(&rev, &perm).iter().map(|&i| data[i]).collect()
}
