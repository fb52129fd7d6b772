//! `stage7 bench failover`: how long calls go unserved when the connection
//! is killed under them.
//!
//! * `amqp-forced-close`: the bare AMQP transport calls an entity in a
//!   tight loop while `rabbitmqctl close_connection` kills its connection
//!   from the broker's side. Each trial measures the gap from the start of
//!   the first call that failed to the end of the first call that succeeded
//!   again: noticing the loss, reconnecting, re-opening channels.
//! * `close/…` and `stop-app/…`: a caller entity calls a callee entity
//!   through the whole stack in a tight loop. The fault is a forced close
//!   of the caller's connection, or `rabbitmqctl stop_app` then `start_app`.
//!   `…/http-takeover` is the time from the caller noticing the loss to the
//!   first call served over HTTP; `…/amqp-back` the time from the broker
//!   being back (connection closed: at once; `start_app`: once it has
//!   started) to the first call served over AMQP again. Every failed call is
//!   counted and reported; the goal is none.
//!
//! The faults go through `rabbitmqctl`, which acts on the node
//! `RABBITMQ_NODENAME` names (the local default node without it): point it
//! and `RABBITMQ_URL` at a private node to leave a shared broker alone.
//! `scripts/check-failover` runs this scenario and checks its bounds.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use stage7_transport::amqp::AmqpTransport;
use stage7_transport::{Config, Entity, Message, Route};
use tower::ServiceExt;

use super::Options;
use super::broker::{echo_entity, name, url};

/// Forced-close trials per run.
const TRIALS: usize = 20;

/// Runs `rabbitmqctl` with `args` on the node `RABBITMQ_NODENAME` names;
/// returns its output.
fn rabbitmqctl(args: &[&str]) -> Result<String, String> {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .map_err(|e| {
            format!(
                "cannot run rabbitmqctl (the failover bench needs the broker's CLI, acting on the \
                 node RABBITMQ_NODENAME names): {e}"
            )
        })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "rabbitmqctl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Closes, from the broker's side, the connection whose client named itself
/// `connection_name`.
fn close_connection(connection_name: &str) -> Result<(), String> {
    let listed = rabbitmqctl(&["list_connections", "pid", "client_properties", "-q"])?;
    let wanted = format!("{{\"connection_name\",\"{connection_name}\"}}");
    let pid = listed
        .lines()
        .find_map(|line| {
            line.split_once('\t')
                .filter(|(_, props)| props.contains(&wanted))
        })
        .map(|(pid, _)| pid.to_owned())
        .ok_or_else(|| {
            format!(
                "no broker connection named {connection_name} (is RABBITMQ_NODENAME the node \
                 RABBITMQ_URL reaches?)"
            )
        })?;
    rabbitmqctl(&["close_connection", &pid, "failover bench"]).map(drop)
}

fn report(series: &str, gaps: &mut [Duration], as_json: bool) {
    gaps.sort();
    let at = |q: f64| gaps[((gaps.len() as f64 - 1.0) * q).round() as usize];
    let ms = |d: Duration| (d.as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    let (p50, p99, max) = (at(0.5), at(0.99), at(1.0));
    if as_json {
        println!(
            "{}",
            json!({"scenario": "failover", "series": series, "trials": gaps.len(),
                   "p50_ms": ms(p50), "p99_ms": ms(p99), "max_ms": ms(max)})
        );
    } else {
        println!(
            "failover       {series:<22} trials={:<3} p50={:>8.2} ms  p99={:>8.2} ms  max={:>8.2} ms",
            gaps.len(),
            ms(p50),
            ms(p99),
            ms(max)
        );
    }
}

async fn amqp_forced_close() -> Result<Vec<Duration>, String> {
    let url = url()?;
    let server = AmqpTransport::builder(url.clone())
        .connection_name(name("bench-server"))
        .build()
        .map_err(|e| e.to_string())?;
    let entity = name("echo");
    let subscriber = echo_entity(&server, &entity).await?;
    let client_name = name("bench-client");
    let client = AmqpTransport::builder(url)
        .connection_name(&client_name)
        .build()
        .map_err(|e| e.to_string())?;
    client.connected().await;

    let mut gaps = Vec::with_capacity(TRIALS);
    for trial in 1..=TRIALS {
        eprintln!("  [failover] amqp forced close, trial {trial}/{TRIALS}");
        let closer_name = client_name.clone();
        let mut closer = tokio::task::spawn_blocking(move || close_connection(&closer_name));
        let mut first_failure: Option<Instant> = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if Instant::now() > deadline {
                return Err("no call succeeded within 30 s of the forced close".to_owned());
            }
            let started = Instant::now();
            let call = client
                .clone()
                .oneshot(Message::request(&entity, json!(trial)));
            let outcome = tokio::time::timeout(Duration::from_secs(5), call).await;
            match (outcome, first_failure) {
                (Ok(Ok(_)), Some(failed_at)) => {
                    gaps.push(failed_at.elapsed());
                    break;
                }
                (Ok(Ok(_)), None) => {}
                (_, None) => first_failure = Some(started),
                (_, Some(_)) => {}
            }
        }
        match (&mut closer).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error),
            Err(error) => return Err(error.to_string()),
        }
    }
    subscriber.shutdown(Duration::from_secs(1)).await;
    Ok(gaps)
}

/// A call's end, route and success, from the caller's tight loop.
#[derive(Debug, Clone, Copy)]
struct Served {
    at: Instant,
    route: Option<Route>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Close,
    StopApp,
}

/// Runs `trials` faults against a caller entity calling a callee entity,
/// returning the takeover and comeback times and the failed calls.
async fn entities(
    fault: Fault,
    trials: usize,
) -> Result<(Vec<Duration>, Vec<Duration>, usize), String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let echo = tower::service_fn(|message: Message| async move {
        Ok::<_, std::convert::Infallible>(Some(message.reply(json!("ok"))))
    });
    let callee_id = name("bench-echo");
    let callee = Entity::builder("Echo", echo)
        .id(&callee_id)
        .queue_expires(Some(Duration::from_secs(60)))
        .config(config.clone())
        .start()
        .await
        .map_err(|e| e.to_string())?;
    let caller_id = name("bench-caller");
    let caller = Entity::builder(
        "Caller",
        tower::service_fn(|_: Message| async { Ok::<_, std::convert::Infallible>(None) }),
    )
    .id(&caller_id)
    .queue_expires(Some(Duration::from_secs(60)))
    .config(config)
    .route(&callee_id, callee.url())
    .start()
    .await
    .map_err(|e| e.to_string())?;
    if !caller.amqp().is_connected() {
        return Err("the failover bench needs RabbitMQ at RABBITMQ_URL".to_owned());
    }
    let (log, mut served) = tokio::sync::mpsc::unbounded_channel();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let calls = {
        let (caller, stop) = (caller.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let result = caller
                    .call(Message::request(&callee_id, json!("ping")))
                    .await;
                let _ = log.send(Served {
                    at: Instant::now(),
                    route: result.ok().map(|delivery| delivery.route()),
                });
            }
        })
    };
    let (mut takeovers, mut comebacks, mut failed) = (Vec::new(), Vec::new(), 0);
    for trial in 1..=trials {
        eprintln!("  [failover] {fault:?} trial {trial}/{trials}");
        while served.try_recv().is_ok() {}
        let connection = format!("Caller:{caller_id}");
        let mut inject = tokio::task::spawn_blocking(move || match fault {
            Fault::Close => close_connection(&connection),
            Fault::StopApp => rabbitmqctl(&["stop_app"]).map(drop),
        });
        let mut injected = None;
        let lost = loop {
            if !caller.amqp().is_connected() {
                break Instant::now();
            }
            if injected.is_none() {
                tokio::select! {
                    done = &mut inject => {
                        done.map_err(|e| e.to_string())??;
                        injected = Some(Instant::now());
                    }
                    () = tokio::time::sleep(Duration::from_micros(200)) => {}
                }
            } else if injected.is_some_and(|at| at.elapsed() > Duration::from_secs(10)) {
                return Err(
                    "the fault was injected but the caller never lost its connection".to_owned(),
                );
            } else {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        };
        if injected.is_none() {
            inject.await.map_err(|e| e.to_string())??;
        }
        let back = match fault {
            Fault::Close => lost,
            Fault::StopApp => {
                tokio::task::spawn_blocking(|| {
                    rabbitmqctl(&["start_app"])?;
                    rabbitmqctl(&["await_startup"]).map(drop)
                })
                .await
                .map_err(|e| e.to_string())??;
                Instant::now()
            }
        };
        let (mut takeover, mut comeback) = (None, None);
        let limit = Instant::now() + Duration::from_secs(30);
        while comeback.is_none() && Instant::now() < limit {
            let Ok(Some(call)) = tokio::time::timeout(Duration::from_secs(5), served.recv()).await
            else {
                continue;
            };
            match call.route {
                None => failed += 1,
                Some(Route::Http) if takeover.is_none() && call.at >= lost => {
                    takeover = Some(call.at - lost)
                }
                Some(Route::Amqp) if call.at >= back && caller.amqp().is_connected() => {
                    comeback = Some(call.at - back);
                }
                Some(_) => {}
            }
        }
        takeovers.extend(takeover);
        comebacks.push(comeback.ok_or("AMQP did not come back within 30 s")?);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = calls.await;
    caller.shutdown().await.map_err(|e| e.to_string())?;
    callee.shutdown().await.map_err(|e| e.to_string())?;
    Ok((takeovers, comebacks, failed))
}

pub(crate) async fn run(options: &Options) -> Result<(), String> {
    let mut gaps = amqp_forced_close().await?;
    report("amqp-forced-close", &mut gaps, options.json);
    for (fault, label) in [(Fault::Close, "close"), (Fault::StopApp, "stop-app")] {
        let (mut takeovers, mut comebacks, failed) = entities(fault, TRIALS).await?;
        if !takeovers.is_empty() {
            report(
                &format!("{label}/http-takeover"),
                &mut takeovers,
                options.json,
            );
        }
        report(&format!("{label}/amqp-back"), &mut comebacks, options.json);
        if options.json {
            println!(
                "{}",
                json!({"scenario": "failover", "series": format!("{label}/failed-calls"), "failed": failed})
            );
        } else {
            println!("failover       {label}/failed-calls{:<8} {failed}", "");
        }
    }
    Ok(())
}
