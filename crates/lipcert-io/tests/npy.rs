use lipcert_io::{DType, NpyArray};

#[test]
fn write_then_read_round_trips_every_dtype() {
    for dtype in [DType::F32, DType::F64, DType::I64, DType::I32, DType::U8] {
        for shape in [vec![5], vec![2, 3], vec![2, 1, 3, 2], vec![0, 4]] {
            let n: usize = shape.iter().product();
            let data: Vec<f64> =
                (0..n).map(|i| i as f64 * 2.0 - 3.0).map(|v| if dtype == DType::U8 { v.abs() } else { v }).collect();
            let a = NpyArray::new(shape.clone(), data, dtype);
            let bytes = a.to_bytes();
            assert_eq!(
                (bytes.len() - a.data.len() * [4, 8, 8, 4, 1][dtype as usize].min(8)) % 64,
                0,
                "data must start 64-byte aligned"
            );
            assert_eq!(NpyArray::parse(&bytes).unwrap(), a);
        }
    }
}

/// A .npy written by hand as NumPy would (header dict, version 1).
fn npy(descr: &str, fortran: bool, shape: &str, body: &[u8]) -> Vec<u8> {
    let mut h = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn reads_fortran_order_and_big_endian() {
    // [[1, 2, 3], [4, 5, 6]] stored column by column.
    let body: Vec<u8> = [1.0f64, 4.0, 2.0, 5.0, 3.0, 6.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let a = NpyArray::parse(&npy("<f8", true, "(2, 3)", &body)).unwrap();
    assert_eq!(a.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let body: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_be_bytes()).collect();
    assert_eq!(NpyArray::parse(&npy(">f4", false, "(2,)", &body)).unwrap().data, vec![1.5, -2.0]);
}

#[test]
fn malformed_files_are_errors() {
    let body: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert!(NpyArray::parse(&npy("<f4", false, "(3,)", &body)).unwrap_err().to_string().contains("needs 12"));
    assert!(NpyArray::parse(&npy("<c16", false, "(1,)", &body)).unwrap_err().to_string().contains("unsupported dtype"));
    assert!(NpyArray::parse(b"PK\x03\x04 a zip file").unwrap_err().to_string().contains("magic"));
    let good = npy("<f4", false, "(2,)", &body);
    for cut in 0..good.len() {
        assert!(NpyArray::parse(&good[..cut]).is_err());
    }
}
