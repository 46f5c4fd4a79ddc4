//! `logs`: the container's lines as the API server relays them, filtered, followed, refused.

use std::time::Duration;

use fake_kube::PodBehavior;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{Cluster, NS, bin_command};

const POD: &str = "auth-postgres-dev-postgresql-0";

async fn installed() -> Cluster {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_log_is_shown_filtered_and_as_json() {
    let c = installed().await;
    c.fake.log_at(
        NS,
        POD,
        "postgresql",
        Duration::from_secs(7200),
        "LOG:  database system was shut down",
    );
    c.fake.log(
        NS,
        POD,
        "postgresql",
        "LOG:  database system is ready to accept connections",
    );
    c.fake
        .log(NS, POD, "postgresql", "LOG:  checkpoint starting: time");
    c.fake
        .log(NS, POD, "metrics", "msg=\"Listening on\" address=[::]:9187");

    let all = c.run(&["logs"]).await;
    assert_eq!(all.code, 0, "{}", all.stderr);
    assert_eq!(
        all.stdout,
        "LOG:  database system was shut down\nLOG:  database system is ready to accept connections\nLOG:  checkpoint starting: time\n"
    );
    let recent = c.run(&["logs", "--since", "1h"]).await;
    assert!(
        !recent.stdout.contains("shut down") && recent.stdout.contains("ready to accept"),
        "{}",
        recent.stdout
    );
    let last = c.run(&["logs", "--tail", "1"]).await;
    assert_eq!(last.stdout, "LOG:  checkpoint starting: time\n");
    let stamped = c.run(&["logs", "--tail", "1", "--timestamps"]).await;
    let (time, line) = stamped.stdout.trim_end().split_once(' ').unwrap();
    assert!(time.parse::<jiff::Timestamp>().is_ok(), "{time}");
    assert_eq!(line, "LOG:  checkpoint starting: time");
    let metrics = c.run(&["logs", "--container", "metrics"]).await;
    assert!(metrics.stdout.contains("9187"), "{}", metrics.stdout);

    let json = c
        .run(&["logs", "--tail", "2", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(json["pod"], POD);
    assert_eq!(json["container"], "postgresql");
    assert_eq!(
        json["lines"],
        serde_json::json!([
            "LOG:  database system is ready to accept connections",
            "LOG:  checkpoint starting: time"
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_prints_new_lines_as_they_come_until_ctrl_c() {
    let c = installed().await;
    c.fake.log(NS, POD, "postgresql", "first");
    let kc = c.kubeconfig.display().to_string();
    let mut child = bin_command(
        c.dir.path(),
        &["logs", "-f", "-o", "json", "--kubeconfig", &kc],
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let next = async |lines: &mut tokio::io::Lines<_>| -> Value {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("a line within 20 s")
            .unwrap()
            .expect("a line, not the end");
        serde_json::from_str(&line).unwrap()
    };
    assert_eq!(next(&mut lines).await["line"], "first");
    c.fake.log(NS, POD, "postgresql", "second, printed later");
    let second = next(&mut lines).await;
    assert_eq!(second["line"], "second, printed later");
    assert_eq!(second["container"], "postgresql");
    // Ctrl-C ends it, as asked: exit 0.
    let status = crate::support::ctrl_c(child).await.status;
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_instance_after_a_restart_and_every_refusal() {
    let c = installed().await;
    // No restart yet: no previous log (a usage error, nothing else to try).
    c.run(&["logs", "--previous"])
        .await
        .refused(2, "has not restarted", "drop --previous");
    c.fake
        .log(NS, POD, "postgresql", "FATAL:  could not open file");
    c.fake.restart_container(NS, POD, "postgresql");
    c.fake.log(NS, POD, "postgresql", "LOG:  starting again");
    let previous = c.run(&["logs", "--previous"]).await;
    assert_eq!(previous.stdout, "FATAL:  could not open file\n");
    let now = c.run(&["logs"]).await;
    assert_eq!(now.stdout, "LOG:  starting again\n");
    c.run(&["logs", "-f", "-p"])
        .await
        .refused(2, "--follow and --previous", "drop one");

    // The metrics exporter switched off: no such container.
    let values = c.dir.path().join("values.yaml");
    std::fs::write(&values, "metrics:\n  enabled: false\n").unwrap();
    c.install_ok(&["--values", values.to_str().unwrap()]).await;
    c.run(&["logs", "--container", "metrics"]).await.refused(
        2,
        "has no metrics exporter",
        "--container postgresql",
    );

    // prod has no pod.
    c.run(&["logs", "--env", "prod"])
        .await
        .refused(2, "no database in the cluster", "");

    // Not installed here.
    let other = Cluster::with_plan_class().await;
    other.create_namespace();
    other
        .run(&["logs"])
        .await
        .refused(1, "the pod does not exist", "phonebill-db install");

    // A pod on no node (unschedulable): the API server answers an empty log; the tool says why.
    let pending = Cluster::with_plan_class().await;
    pending.fake.set_pods(PodBehavior::Unschedulable);
    let run = pending.run(&["install", "--timeout", "1s"]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    pending.run(&["logs"]).await.refused(
        1,
        "is not scheduled on a node yet",
        "phonebill-db status",
    );

    // Scheduled, its container not started: the API's reason, and where to look.
    let starting = Cluster::with_plan_class().await;
    starting.fake.hold_pod(NS, POD);
    let run = starting.run(&["install", "--timeout", "1s"]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    starting
        .run(&["logs"])
        .await
        .refused(1, "is waiting to start", "phonebill-db status");
}
