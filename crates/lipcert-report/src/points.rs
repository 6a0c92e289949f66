//! The sample points of a report and their labels: given as files, the centres of VNN-LIB
//! input boxes, uniform samples of a box, or (with nothing given) uniform samples of [0, 1]^n.

use crate::StateBox;
use lipcert_core::rng::Rng;
use lipcert_core::Network;
use serde::Serialize;

/// Where the points came from.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PointsSource {
    /// `--data X.npy --labels Y.npy`.
    Files { data: String, labels: String },
    /// The centre of each property's (first) input box.
    VnnlibCentres,
    /// Uniform samples of a box.
    Box { source: String },
    /// Nothing was given: uniform samples of [0, 1]^n, labelled by the model.
    Default,
}

/// Points [n, input_len] with labels, and the valid input range the balls are clipped to.
#[derive(Clone, Debug)]
pub struct Points {
    pub x: Vec<f64>,
    pub labels: Vec<usize>,
    pub source: PointsSource,
    /// True when the labels are the model's own predictions (robustness of the predictions,
    /// not accuracy).
    pub labels_are_predictions: bool,
    /// Inputs outside [lo, hi] are not part of any perturbation set.
    pub clip: Option<(f64, f64)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PointsSummary {
    pub count: usize,
    pub source: PointsSource,
    pub description: String,
    pub labels_are_predictions: bool,
    pub clip: Option<(f64, f64)>,
}

/// The class of each row (the first largest output).
pub fn predictions(net: &Network, x: &[f64]) -> Result<Vec<usize>, String> {
    let n = x.len() / net.input_len().max(1);
    let m = net.output_len();
    let y = net.forward(x, n).map_err(|e| e.to_string())?;
    Ok(y.chunks(m.max(1)).map(argmax).collect())
}

fn argmax(r: &[f64]) -> usize {
    (0..r.len()).fold(0, |b, j| if r[j] > r[b] { j } else { b })
}

/// The class `l` when every case of the property is "some y_j >= y_l" (the usual robustness
/// property of class l), else None.
pub fn property_label(p: &lipcert_io::vnnlib::Property) -> Option<usize> {
    let mut label = None;
    for r in p.regions() {
        for case in &r.any_of {
            // A robustness case is one atom c.y <= 0 with c = a (e_l - e_j), a > 0.
            let [(c, d)] = case.as_slice() else { return None };
            let nz: Vec<usize> = (0..c.len()).filter(|&i| c[i] != 0.0).collect();
            let [a, b] = nz.as_slice() else { return None };
            if *d != 0.0 || c[*a] != -c[*b] {
                return None;
            }
            let l = if c[*a] > 0.0 { *a } else { *b };
            if label.is_some_and(|k| k != l) {
                return None;
            }
            label = Some(l);
        }
    }
    label
}

impl Points {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f64] {
        let len = self.x.len() / self.len().max(1);
        &self.x[i * len..(i + 1) * len]
    }

    /// Uniform samples of a box, labelled by the model.
    pub fn sample_box(net: &Network, b: &StateBox, n: usize, seed: u64) -> Result<Points, String> {
        let mut rng = Rng::new(seed);
        let x: Vec<f64> = (0..n)
            .flat_map(|_| (0..b.lo.len()).map(|i| b.lo[i] + (b.hi[i] - b.lo[i]) * rng.uniform()).collect::<Vec<_>>())
            .collect();
        let labels = predictions(net, &x)?;
        Ok(Points {
            x,
            labels,
            source: PointsSource::Box { source: b.source.clone() },
            labels_are_predictions: true,
            clip: Some(box_range(b)),
        })
    }

    /// The built-in default: uniform samples of [0, 1]^n (the usual range of image inputs).
    pub fn default_for(net: &Network, n: usize, seed: u64) -> Result<Points, String> {
        let len = net.input_len();
        let b = StateBox { lo: vec![0.0; len], hi: vec![1.0; len], source: "[0, 1]^n".into() };
        let mut p = Points::sample_box(net, &b, n, seed)?;
        p.source = PointsSource::Default;
        Ok(p)
    }

    /// The centre of each property's first input box, labelled by the property when it is a
    /// robustness property and by the model otherwise.
    pub fn vnnlib_centres(net: &Network, props: &[(String, lipcert_io::vnnlib::Property)]) -> Result<Points, String> {
        let mut x = vec![];
        let mut from_property = vec![];
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for (_, p) in props {
            let (l, h, _) = &p.input_boxes()[0];
            x.extend(l.iter().zip(h).map(|(a, b)| 0.5 * (a + b)));
            lo = l.iter().cloned().fold(lo, f64::min);
            hi = h.iter().cloned().fold(hi, f64::max);
            from_property.push(property_label(p));
        }
        let predicted = predictions(net, &x)?;
        let labels_are_predictions = from_property.iter().any(|l| l.is_none());
        let labels = from_property.iter().zip(&predicted).map(|(l, &p)| l.unwrap_or(p)).collect();
        Ok(Points { x, labels, source: PointsSource::VnnlibCentres, labels_are_predictions, clip: Some((lo, hi)) })
    }

    /// Every row has the model's input length, every value is finite, every label a class.
    pub fn check(&self, net: &Network) -> Result<(), String> {
        let len = net.input_len();
        if self.x.len() != self.len() * len {
            return Err(format!("{} values for {} points of {len} inputs", self.x.len(), self.len()));
        }
        if let Some(i) = self.x.iter().position(|v| !v.is_finite()) {
            return Err(format!("point {} holds a NaN or infinite value", i / len));
        }
        if let Some((i, l)) = self.labels.iter().enumerate().find(|(_, &l)| l >= net.output_len()) {
            return Err(format!("label {l} of point {i} is not a class index below {}", net.output_len()));
        }
        Ok(())
    }

    /// The smallest box holding every point (clipped range if there is one).
    pub fn hull(&self) -> StateBox {
        let len = self.x.len() / self.len().max(1);
        let mut lo = vec![f64::INFINITY; len];
        let mut hi = vec![f64::NEG_INFINITY; len];
        for i in 0..self.len() {
            for (k, &v) in self.row(i).iter().enumerate() {
                lo[k] = lo[k].min(v);
                hi[k] = hi[k].max(v);
            }
        }
        StateBox { lo, hi, source: format!("the hull of the {} sample points", self.len()) }
    }

    pub fn describe(&self) -> String {
        let what = match &self.source {
            PointsSource::Files { data, labels } => {
                format!("{} points from {data} with labels from {labels}", self.len())
            }
            PointsSource::VnnlibCentres => {
                format!("the centres of the input boxes of {} VNN-LIB properties", self.len())
            }
            PointsSource::Box { source } => format!("{} uniform samples of {source}", self.len()),
            PointsSource::Default => {
                format!("{} uniform samples of [0, 1]^n (no data was given)", self.len())
            }
        };
        let labels = if self.labels_are_predictions {
            "; labels are the model's own predictions, so 'accuracy' below is the robustness of its predictions"
        } else {
            ""
        };
        let clip = self.clip.map_or(String::new(), |(a, b)| format!("; perturbations are clipped to [{a}, {b}]"));
        format!("{what}{labels}{clip}")
    }

    pub fn summary(&self) -> PointsSummary {
        PointsSummary {
            count: self.len(),
            source: self.source.clone(),
            description: self.describe(),
            labels_are_predictions: self.labels_are_predictions,
            clip: self.clip,
        }
    }
}

fn box_range(b: &StateBox) -> (f64, f64) {
    let lo = b.lo.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = b.hi.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}
