//! The async API: a short training run driven only through the `_async`
//! methods, on an executor that is not pollster, equals the blocking run,
//! and leaves its thread free while the GPU works.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use fusedmlp::data::Dataset;
use fusedmlp::{Activation, Gpu, Mlp, MlpConfig, Optimizer, RunReport, TrainConfig, Trainer};
use futures_executor::LocalPool;
use futures_executor::LocalSpawner;
use futures_task::{LocalFutureObj, LocalSpawn};

fn data() -> Dataset {
    let rows = 96;
    let features = 7;
    let x: Vec<f32> = (0..rows * features)
        .map(|i| ((i as u32).wrapping_mul(2654435761) >> 16) as f32 / 32768.0 - 1.0)
        .collect();
    let y: Vec<u32> = (0..rows as u32).map(|r| (r * 5 + 1) % 3).collect();
    Dataset::new("async", x, y, features, 3).unwrap()
}

fn configs() -> (MlpConfig, TrainConfig) {
    let mut model = MlpConfig::deep(7, 4, 13, 3, Activation::Tanh);
    model.seed = 3;
    let train = TrainConfig::default()
        .with_epochs(2)
        .with_batch_size(16)
        .with_learning_rate(0.05)
        .with_optimizer(Optimizer::adam())
        .with_clip_norm(1.0)
        .with_log_every(2)
        .with_seed(5);
    (model, train)
}

type Params = Vec<(Vec<f32>, Vec<f32>)>;

fn bits(p: &Params) -> Vec<u32> {
    p.iter()
        .flat_map(|(w, b)| w.iter().chain(b).map(|v| v.to_bits()))
        .collect()
}

fn blocking_run(gpu: &Gpu) -> (RunReport, Params) {
    let (model, train) = configs();
    let d = data();
    let mut t = Trainer::new(Mlp::new(gpu, model).unwrap(), train, &d, &d).unwrap();
    let report = t.train("blocking", |_, _| {}, |_| {}).unwrap();
    let params = t.model().parameters().unwrap();
    (report, params)
}

/// Trains through the async API only; `ticks` counts how often another
/// task on the same thread ran while the training was still in progress.
async fn async_run(done: Rc<Cell<bool>>) -> (RunReport, Params, Vec<f32>) {
    let gpu = Gpu::new_async().await.unwrap();
    let (model, train) = configs();
    let d = data();
    let mut t = Trainer::new(Mlp::new(&gpu, model).unwrap(), train, &d, &d).unwrap();
    let report = t.train_async("async", |_, _| {}, |_| {}).await.unwrap();
    let params = t.model().parameters_async().await.unwrap();
    let probe = gpu.upload(&[1.5, -2.0, 0.25], 1, 3).unwrap();
    let read = probe.read_async(&gpu).await.unwrap();
    gpu.wait_idle_async().await.unwrap();
    done.set(true);
    (report, params, read)
}

/// Hands the thread back to the executor once (pending once, waking itself).
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

fn spawn_ticker(spawner: &LocalSpawner, done: Rc<Cell<bool>>, ticks: Rc<Cell<u64>>) {
    spawner
        .spawn_local_obj(LocalFutureObj::new(Box::new(async move {
            while !done.get() {
                ticks.set(ticks.get() + 1);
                yield_once().await;
            }
        })))
        .unwrap();
}

#[test]
fn async_training_equals_blocking_training_and_frees_the_thread() {
    let Some(gpu) = common::gpu() else { return };
    let (blocking, blocking_params) = blocking_run(&gpu);

    let mut pool = LocalPool::new();
    let done = Rc::new(Cell::new(false));
    let ticks = Rc::new(Cell::new(0u64));
    let result = Rc::new(Cell::new(None));
    {
        let (done, result) = (done.clone(), result.clone());
        pool.spawner()
            .spawn_local_obj(LocalFutureObj::new(Box::new(async move {
                result.set(Some(async_run(done).await))
            })))
            .unwrap();
    }
    spawn_ticker(&pool.spawner(), done.clone(), ticks.clone());
    pool.run();
    let (report, params, read) = result.take().expect("the async run finished");

    assert_eq!(read, [1.5, -2.0, 0.25]);
    assert_eq!(bits(&params), bits(&blocking_params), "parameters differ");
    assert_eq!(report.total_steps, blocking.total_steps);
    assert_eq!(report.epochs.len(), blocking.epochs.len());
    for (a, b) in report.epochs.iter().zip(&blocking.epochs) {
        assert_eq!(a.train_loss.to_bits(), b.train_loss.to_bits());
        assert_eq!(a.val_accuracy.to_bits(), b.val_accuracy.to_bits());
    }
    assert!(!report.steps.is_empty(), "no logged steps were collected");
    assert_eq!(report.steps.len(), blocking.steps.len());
    for (a, b) in report.steps.iter().zip(&blocking.steps) {
        assert_eq!(a.step, b.step);
        assert_eq!(a.loss.to_bits(), b.loss.to_bits());
        let norms = |s: &fusedmlp::train::StepLog| -> Vec<u32> {
            s.layers
                .iter()
                .map(|l| l.weight_grad_norm.to_bits())
                .collect()
        };
        assert_eq!(norms(a), norms(b), "step {}", a.step);
    }
    // Each GPU wait handed the thread back to the executor: the other task
    // ran while the training was in progress (a blocking wait would have
    // kept it out until the end).
    assert!(
        ticks.get() > report.readbacks,
        "the other task ran {} times during {} readbacks",
        ticks.get(),
        report.readbacks
    );
}

/// Regression: `train_async` never yielded between unlogged steps (they
/// wait for nothing), so a 20 ms ticker on the same single-thread executor
/// stalled for a whole epoch (634 ms measured), and the epoch end's
/// readback blocked in the driver's submit while the GPU caught up (430 ms
/// on lavapipe, whose submissions wait for the one before). Now the steps
/// yield every few milliseconds and readbacks submit on a helper thread;
/// what remains, once the first steps have built their pipelines, is one
/// step's submission and the epoch end's evaluation being recorded and
/// submitted (70 ms measured on a 2-core lavapipe host).
#[test]
fn train_async_hands_the_thread_back_between_unlogged_steps() {
    let Some(_gpu) = common::gpu() else { return };
    let rows = 1600;
    let x: Vec<f32> = (0..rows * 7)
        .map(|i| ((i as u32).wrapping_mul(2654435761) >> 16) as f32 / 32768.0 - 1.0)
        .collect();
    let y: Vec<u32> = (0..rows as u32).map(|r| (r * 5 + 1) % 3).collect();
    let d = Dataset::new("ticks", x, y, 7, 3).unwrap();
    let (model, mut train) = configs();
    train.epochs = 1;
    train.batch_size = 8;
    train.log_every = 1_000_000;
    let mut pool = LocalPool::new();
    let stepping = Rc::new(Cell::new(false));
    let done = Rc::new(Cell::new(false));
    let worst = Rc::new(Cell::new(std::time::Duration::ZERO));
    let training = Rc::new(Cell::new(std::time::Duration::ZERO));
    {
        let (stepping, done, training) = (stepping.clone(), done.clone(), training.clone());
        pool.spawner()
            .spawn_local_obj(LocalFutureObj::new(Box::new(async move {
                let gpu = Gpu::new_async().await.unwrap();
                let mut t = Trainer::new(Mlp::new(&gpu, model).unwrap(), train, &d, &d).unwrap();
                let mut since = None;
                t.train_async(
                    "ticks",
                    |step, _| {
                        // Measured from the third step: the first ones
                        // build pipelines (host work that cannot yield).
                        if step == 3 {
                            stepping.set(true);
                            since = Some(std::time::Instant::now());
                        }
                    },
                    |_| stepping.set(false),
                )
                .await
                .unwrap();
                training.set(since.map(|s| s.elapsed()).unwrap_or_default());
                done.set(true);
            })))
            .unwrap();
    }
    {
        let (stepping, done, worst) = (stepping.clone(), done.clone(), worst.clone());
        pool.spawner()
            .spawn_local_obj(LocalFutureObj::new(Box::new(async move {
                let mut last = std::time::Instant::now();
                while !done.get() {
                    let now = std::time::Instant::now();
                    if stepping.get() {
                        worst.set(worst.get().max(now - last));
                    }
                    last = now;
                    yield_once().await;
                }
            })))
            .unwrap();
    }
    pool.run();
    let (worst, training) = (worst.get(), training.get());
    println!("200 unlogged steps took {training:?}; the other task waited at most {worst:?}");
    assert!(
        training > std::time::Duration::from_millis(100),
        "the epoch was too short to tell ({training:?})"
    );
    assert!(
        worst < std::time::Duration::from_millis(200),
        "the training held the thread for {worst:?}"
    );
}
