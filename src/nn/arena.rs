//! One buffer for all of a net's trained tensors: the arena's entry table.
//!
//! Every trained tensor (each layer's weight and bias, learned PReLU slopes,
//! normalisation scale and shift) lives at its own offset in one buffer, a
//! multiple of [`VIEW_ALIGN`] floats so each can be bound on its own. The
//! model's parameters, a trainer's gradients and each optimizer state use
//! the same [`ParamLayout`], so an elementwise optimizer updates every
//! tensor in one dispatch over the whole buffer (the gaps between tensors
//! hold zeros, which every update keeps at zero), one reduction gives the
//! global gradient norm, and one pass checks every gradient for NaN.
//! A layer's tensors are contiguous: weight, bias, slopes, scale, shift.

use std::ops::Range;

use crate::error::Error;
use crate::gpu::tensor::VIEW_ALIGN;
use crate::gpu::Gpu;
use crate::gpu::GpuTensor;
use crate::nn::MlpConfig;

/// What a tensor of the arena is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A linear layer's weight, `[out, in]`.
    Weight,
    /// A linear layer's bias, `[1, out]`.
    Bias,
    /// Learned PReLU slopes, `[1, n]`.
    Slopes,
    /// A normalisation layer's scale, `[1, out]`.
    NormScale,
    /// A normalisation layer's shift, `[1, out]`.
    NormShift,
}

/// One tensor of the arena: which layer and kind, where, what shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamEntry {
    /// The linear layer it belongs to (0 = first hidden layer).
    pub layer: usize,
    /// What it is.
    pub kind: ParamKind,
    /// Where it starts, in floats (a multiple of [`crate::gpu::VIEW_ALIGN`]).
    pub offset: usize,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

impl ParamEntry {
    /// Floats it holds.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where each of a net's trained tensors lives in its arena.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamLayout {
    entries: Vec<ParamEntry>,
    /// `layer_starts[l]..layer_starts[l + 1]` holds layer `l`'s tensors.
    layer_starts: Vec<usize>,
}

impl ParamLayout {
    /// The layout of `config`'s tensors. Fails where a size overflows.
    pub fn of(config: &MlpConfig) -> Result<ParamLayout, Error> {
        let shapes = config.layer_shapes();
        let mut entries = Vec::new();
        let mut layer_starts = Vec::with_capacity(shapes.len() + 1);
        let mut at = 0usize;
        let overflow = || Error::Config("the net's parameters overflow usize".into());
        for (l, &(fan_in, fan_out)) in shapes.iter().enumerate() {
            layer_starts.push(at);
            let mut push = |kind, rows: usize, cols: usize| -> Result<(), Error> {
                let len = rows.checked_mul(cols).ok_or_else(overflow)?;
                entries.push(ParamEntry {
                    layer: l,
                    kind,
                    offset: at,
                    rows,
                    cols,
                });
                // The next tensor starts at the next aligned float.
                at = at
                    .checked_add(len)
                    .and_then(|end| end.checked_add(VIEW_ALIGN - 1))
                    .map(|end| end / VIEW_ALIGN * VIEW_ALIGN)
                    .ok_or_else(overflow)?;
                Ok(())
            };
            push(ParamKind::Weight, fan_out, fan_in)?;
            push(ParamKind::Bias, 1, fan_out)?;
            let slopes = config.slope_count(l);
            if slopes > 0 {
                push(ParamKind::Slopes, 1, slopes)?;
            }
            if config.has_norm(l) {
                push(ParamKind::NormScale, 1, fan_out)?;
                push(ParamKind::NormShift, 1, fan_out)?;
            }
        }
        layer_starts.push(at);
        Ok(ParamLayout {
            entries,
            layer_starts,
        })
    }

    /// Every tensor, layer by layer.
    pub fn entries(&self) -> &[ParamEntry] {
        &self.entries
    }

    /// Floats in the arena (gaps included).
    pub fn len(&self) -> usize {
        *self.layer_starts.last().unwrap_or(&0)
    }

    /// Whether the arena holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Layer `l`'s tensor of `kind`, if it has one.
    pub fn find(&self, layer: usize, kind: ParamKind) -> Option<&ParamEntry> {
        self.entries
            .iter()
            .find(|e| e.layer == layer && e.kind == kind)
    }

    /// Where layer `l`'s tensors lie in the arena, in floats.
    pub fn layer_range(&self, l: usize) -> Range<usize> {
        self.layer_starts[l]..self.layer_starts[l + 1]
    }

    /// Where each layer's tensors start, in floats, and where the arena
    /// ends (one more entry than there are layers).
    pub fn layer_starts(&self) -> &[usize] {
        &self.layer_starts
    }

    /// The tensor of `entry` inside `arena` (a buffer laid out by this layout).
    pub(crate) fn view(&self, arena: &GpuTensor, entry: &ParamEntry) -> Result<GpuTensor, Error> {
        arena.view(entry.offset, entry.rows, entry.cols)
    }

    /// Layer `l`'s tensor of `kind` inside `arena`.
    pub(crate) fn view_of(
        &self,
        arena: &GpuTensor,
        layer: usize,
        kind: ParamKind,
    ) -> Result<GpuTensor, Error> {
        let entry = self.find(layer, kind).ok_or_else(|| {
            Error::Config(format!("layer {layer} has no {kind:?} tensor in its arena"))
        })?;
        self.view(arena, entry)
    }

    /// Every tensor in the order a checkpoint lists optimizer state in:
    /// each layer's weight and bias, then every learned-slope tensor, then
    /// each normalisation's scale and shift, layer by layer.
    pub(crate) fn checkpoint_order(&self) -> Vec<&ParamEntry> {
        let rank = |e: &ParamEntry| match e.kind {
            ParamKind::Weight => (0, e.layer, 0),
            ParamKind::Bias => (0, e.layer, 1),
            ParamKind::Slopes => (1, e.layer, 0),
            ParamKind::NormScale => (2, e.layer, 0),
            ParamKind::NormShift => (2, e.layer, 1),
        };
        let mut order: Vec<&ParamEntry> = self.entries.iter().collect();
        order.sort_by_key(|e| rank(e));
        order
    }

    /// Layer `l`'s tensor of `kind` inside `arena`, where it has one.
    pub(crate) fn maybe_view(
        &self,
        arena: &GpuTensor,
        layer: usize,
        kind: ParamKind,
    ) -> Result<Option<GpuTensor>, Error> {
        self.find(layer, kind)
            .map(|e| self.view(arena, e))
            .transpose()
    }
}

/// Whether a configuration's arena fits the device: the arena's own
/// question, asked before anything is allocated.
impl MlpConfig {
    /// Checks that every layer's weight, and all the parameters together
    /// (they share one arena buffer), fit one buffer of `gpu` (its
    /// `max_buffer_size` and `max_storage_buffer_binding_size`), without
    /// allocating anything.
    pub fn check_fits(&self, gpu: &Gpu) -> Result<(), Error> {
        for (l, (fan_in, fan_out)) in self.layer_shapes().into_iter().enumerate() {
            let what = format!("layer {l}'s weight [{fan_out}, {fan_in}]");
            let floats = fan_in.checked_mul(fan_out).ok_or_else(|| {
                Error::Config(format!(
                    "{what} has more values than this platform can count"
                ))
            })?;
            gpu.check_tensor_size(&what, floats)?;
        }
        // Every tensor lives in one arena buffer (and so do the gradients
        // and each optimizer state): the whole net must fit one buffer too.
        let layout = ParamLayout::of(self)?;
        gpu.check_tensor_size(
            &format!(
                "the net's {} parameters (one buffer for all layers)",
                self.parameter_count()
            ),
            layout.len(),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;
    use crate::gpu::tensor::align_floats;
    use crate::nn::{NormPlacement, PreluMode};

    #[test]
    fn every_tensor_is_aligned_and_disjoint_and_layers_are_contiguous() {
        let mut c = MlpConfig::new(3, vec![17, 5], 2, Activation::Prelu { weight: 0.25 });
        c.learn_prelu = Some(PreluMode::PerUnit);
        let layout = ParamLayout::of(&c).unwrap();
        let kinds: Vec<(usize, ParamKind, usize, usize)> = layout
            .entries()
            .iter()
            .map(|e| (e.layer, e.kind, e.rows, e.cols))
            .collect();
        assert_eq!(
            kinds,
            [
                (0, ParamKind::Weight, 17, 3),
                (0, ParamKind::Bias, 1, 17),
                (0, ParamKind::Slopes, 1, 17),
                (1, ParamKind::Weight, 5, 17),
                (1, ParamKind::Bias, 1, 5),
                (1, ParamKind::Slopes, 1, 5),
                (2, ParamKind::Weight, 2, 5),
                (2, ParamKind::Bias, 1, 2),
            ]
        );
        let mut end = 0;
        for e in layout.entries() {
            assert_eq!(e.offset % VIEW_ALIGN, 0, "{e:?}");
            assert!(e.offset >= end, "{e:?} overlaps");
            end = e.offset + e.len();
            let r = layout.layer_range(e.layer);
            assert!(r.contains(&e.offset) && end <= r.end, "{e:?} outside {r:?}");
        }
        assert_eq!(layout.len(), align_floats(end));
        assert_eq!(layout.layer_starts().len(), 4);

        let mut n = MlpConfig::new(4, vec![8, 8], 3, Activation::Relu);
        n.layer_norm = Some(NormPlacement::Before);
        let layout = ParamLayout::of(&n).unwrap();
        assert!(layout.find(1, ParamKind::NormScale).is_some());
        assert!(
            layout.find(2, ParamKind::NormScale).is_none(),
            "no norm on the output layer"
        );
        // 64 x 64 weights take whole blocks: no gaps at all.
        let main = MlpConfig::deep(64, 20, 64, 10, Activation::Relu);
        let layout = ParamLayout::of(&main).unwrap();
        let w1 = layout.find(1, ParamKind::Weight).unwrap();
        assert_eq!(w1.offset, 64 * 64 + 64);
    }

    /// A checkpoint stores optimizer state as `optimizer.{k}` in this
    /// order: files written before keep loading into the right tensors.
    #[test]
    fn checkpoint_order_is_linear_layers_then_slopes_then_norms() {
        let order = |c: &MlpConfig| -> Vec<(usize, ParamKind)> {
            ParamLayout::of(c)
                .unwrap()
                .checkpoint_order()
                .iter()
                .map(|e| (e.layer, e.kind))
                .collect()
        };
        let mut c = MlpConfig::new(3, vec![6, 5], 2, Activation::Prelu { weight: 0.25 });
        c.learn_prelu = Some(PreluMode::PerUnit);
        use ParamKind::*;
        let linear: Vec<(usize, ParamKind)> =
            (0..3).flat_map(|l| [(l, Weight), (l, Bias)]).collect();
        assert_eq!(
            order(&c),
            [linear.clone(), vec![(0, Slopes), (1, Slopes)]].concat()
        );
        let mut n = MlpConfig::new(4, vec![8, 8], 3, Activation::Relu);
        n.layer_norm = Some(NormPlacement::After);
        let norms = (0..2).flat_map(|l| [(l, NormScale), (l, NormShift)]);
        assert_eq!(order(&n), [linear, norms.collect()].concat());
    }
}
