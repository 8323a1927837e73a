//! Property-based fuzzing of the checkpoint reader (`Checkpoint::from_bytes`):
//! arbitrary bytes and mutations of real checkpoints (bit flips,
//! truncations, spliced headers, edited metadata) never panic, never hang,
//! and never allocate beyond the input's size; an `Ok` is a consistent model.
//! Cases per property: `FUZZ_CASES` (default 2000); `scripts/fuzz.sh` runs
//! 100 000.

use std::time::{Duration, Instant};

use fusedmlp::nn::LayerValues;
use fusedmlp::train::{Checkpoint, TrainingState};
use fusedmlp::{Activation, MlpConfig, Optimizer, TrainConfig};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// A small real checkpoint (model and training state) as (main, sidecar) bytes.
fn real_checkpoint() -> (Vec<u8>, Vec<u8>) {
    let model = MlpConfig::deep(5, 2, 6, 3, Activation::Tanh);
    let params: Vec<LayerValues> = model
        .layer_shapes()
        .iter()
        .map(|&(i, o)| ((0..i * o).map(|k| k as f32 * 0.01).collect(), vec![0.5; o]))
        .collect();
    let optimizer_state = params
        .iter()
        .flat_map(|(w, b)| [(w.clone(), w.clone()), (b.clone(), b.clone())])
        .collect();
    let c = Checkpoint {
        model,
        params,
        training: Some(TrainingState {
            step: 7,
            epoch: 1,
            step_in_epoch: 2,
            train_config: TrainConfig::default().with_optimizer(Optimizer::adam()),
            data_fingerprint: 42,
            epoch_totals: [1.0, 2.0, 3.0],
            optimizer_state,
        }),
        standardizer: None,
        slopes: vec![Vec::new(); 3],
        norms: vec![(Vec::new(), Vec::new()); 3],
        running: vec![(Vec::new(), Vec::new()); 3],
    };
    // A folder per call: the properties run on parallel threads of one
    // process, and each removes its folder when done.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("fusedmlp-fuzz-ckpt-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.safetensors");
    c.save(&path).unwrap();
    let main = std::fs::read(&path).unwrap();
    let side = std::fs::read(dir.join("c.safetensors.optim-7.safetensors")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    // The saved bytes read back to the same checkpoint.
    assert_eq!(Checkpoint::from_bytes("c", &main, Some(&side)).unwrap(), c);
    (main, side)
}

/// Parses with a time limit and checks an `Ok` is consistent.
fn check(main: &[u8], side: Option<&[u8]>) -> Result<(), TestCaseError> {
    let start = Instant::now();
    let result = Checkpoint::from_bytes("fuzz", main, side);
    prop_assert!(
        start.elapsed() < Duration::from_secs(1),
        "slow case: {:?}",
        start.elapsed()
    );
    if let Ok(c) = result {
        let shapes = c.model.layer_shapes();
        prop_assert_eq!(c.params.len(), shapes.len());
        for ((w, b), (i, o)) in c.params.iter().zip(shapes) {
            prop_assert_eq!(w.len(), i * o);
            prop_assert_eq!(b.len(), o);
            prop_assert!(w.iter().chain(b).all(|v| v.is_finite()));
        }
        if let Some(t) = &c.training {
            prop_assert_eq!(t.optimizer_state.len(), 2 * c.params.len());
        }
    }
    Ok(())
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    })
}

#[test]
fn arbitrary_bytes_never_panic() {
    let start = Instant::now();
    runner()
        .run(
            &(
                vec(any::<u8>(), 0..512),
                proptest::option::of(vec(any::<u8>(), 0..256)),
            ),
            |(m, s)| check(&m, s.as_deref()),
        )
        .unwrap();
    println!(
        "arbitrary bytes: {} cases in {:.1} s",
        cases(),
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn mutated_checkpoints_never_panic() {
    let (main, side) = real_checkpoint();
    let start = Instant::now();
    let strategy = (
        vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        any::<prop::sample::Index>(),
        any::<bool>(),
        any::<bool>(),
        vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    );
    runner()
        .run(
            &strategy,
            |(flips, cut, truncate, drop_side, side_flips)| {
                let mut m = main.clone();
                for (i, x) in flips {
                    let k = i.index(m.len());
                    m[k] ^= x;
                }
                if truncate {
                    m.truncate(cut.index(m.len() + 1));
                }
                let mut s = side.clone();
                for (i, x) in side_flips {
                    let k = i.index(s.len());
                    s[k] ^= x;
                }
                check(&m, if drop_side { None } else { Some(&s) })
            },
        )
        .unwrap();
    println!(
        "mutated checkpoints: {} cases in {:.1} s",
        cases(),
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn edited_headers_never_panic() {
    let (main, side) = real_checkpoint();
    let n = u64::from_le_bytes(main[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(main[8..8 + n].to_vec()).unwrap();
    let start = Instant::now();
    // Replace one number in the JSON header (shapes, offsets, widths, steps)
    // with an arbitrary one, keeping the file otherwise intact.
    let numbers: Vec<(usize, usize)> = {
        let b = header.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i].is_ascii_digit() {
                let s = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                out.push((s, i));
            } else {
                i += 1;
            }
        }
        out
    };
    runner()
        .run(
            &(any::<prop::sample::Index>(), any::<u64>()),
            |(which, value)| {
                let (s, e) = numbers[which.index(numbers.len())];
                let edited = format!("{}{}{}", &header[..s], value, &header[e..]);
                let mut m = (edited.len() as u64).to_le_bytes().to_vec();
                m.extend_from_slice(edited.as_bytes());
                m.extend_from_slice(&main[8 + n..]);
                check(&m, Some(&side))
            },
        )
        .unwrap();
    println!(
        "edited headers: {} cases in {:.1} s",
        cases(),
        start.elapsed().as_secs_f64()
    );
}
