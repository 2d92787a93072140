//! The sandbox manager against a real Docker daemon and the real `assistd-sandbox` image.
//! Without Docker these tests fail (they do not skip): start Docker and build the image
//! first (sandbox/build-image.sh). Each test uses its own instance label, so tests run in
//! parallel and a rerun sweeps what an aborted run left behind.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use assistd::sandbox::{ExecOutput, SandboxConfig, SandboxManager};
use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;
use tokio_util::sync::CancellationToken;

fn config(test: &str) -> SandboxConfig {
    let mut cfg = SandboxConfig {
        instance: format!("test-{test}"),
        pool_size: 0,
        pool_max: 0,
        exec_timeout_secs: 20,
        ..Default::default()
    };
    if let Ok(image) = std::env::var("ASSISTD_SANDBOX_IMAGE") {
        cfg.image = image;
    }
    cfg
}

async fn start(cfg: SandboxConfig) -> SandboxManager {
    SandboxManager::start(cfg)
        .await
        .expect("these tests need a running Docker daemon")
}

async fn run(manager: &SandboxManager, session: &str, code: &str) -> ExecOutput {
    manager
        .exec(session, code, &CancellationToken::new())
        .await
        .expect("the sandbox should run code")
}

async fn docker() -> Docker {
    Docker::connect_with_socket_defaults()
        .expect("docker socket")
        .negotiate_version()
        .await
        .expect("docker answers")
}

/// Names of containers labelled with `instance`.
async fn containers_of(instance: &str) -> Vec<String> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("assistd.instance={instance}")],
    )]);
    docker()
        .await
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .expect("list containers")
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .collect()
}

async fn wait_until_no_containers(instance: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !containers_of(instance).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "containers of {instance} were not removed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asserts a session still works after its neighbour did something hostile.
async fn assert_neighbour_works(manager: &SandboxManager) {
    let output = run(manager, "neighbour", "neighbour_value").await;
    assert_eq!(output.result.as_deref(), Some("'still here'"), "{output:?}");
}

async fn start_with_neighbour(
    test: &str,
    tweak: impl FnOnce(&mut SandboxConfig),
) -> SandboxManager {
    let mut cfg = config(test);
    tweak(&mut cfg);
    let manager = start(cfg).await;
    run(&manager, "neighbour", "neighbour_value = 'still here'").await;
    manager
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_persist_between_executions_in_one_session() {
    let manager = start(config("persist")).await;
    run(&manager, "t1", "x = 40").await;
    let output = run(&manager, "t1", "x += 2\nprint(x)").await;
    assert_eq!(output.stdout, "42\n");
    assert!(output.error.is_none(), "{output:?}");
    assert!(manager.has_session("t1").await);
    assert_eq!(manager.stats().live, 1);
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_given_its_own_memory_limit_gets_it_and_others_keep_the_default() {
    let mut cfg = config("memory");
    cfg.pool_size = 1;
    let manager = start(cfg).await;
    manager.set_memory_mb("big", 2048);
    // cgroup v2, else v1.
    let read = "import os\n\
p = '/sys/fs/cgroup/memory.max'\n\
p = p if os.path.exists(p) else '/sys/fs/cgroup/memory/memory.limit_in_bytes'\n\
print(open(p).read().strip())";
    assert_eq!(run(&manager, "big", read).await.stdout, "2147483648\n");
    assert_eq!(run(&manager, "plain", read).await.stdout, "1073741824\n");
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_cannot_see_each_others_variables_or_files() {
    let manager = start(config("isolation")).await;
    run(
        &manager,
        "a",
        "secret = 1\nopen('/mnt/data/a.txt', 'w').write('a')",
    )
    .await;
    let output = run(
        &manager,
        "b",
        "import os\nprint('secret' in globals(), sorted(os.listdir('/mnt/data')))",
    )
    .await;
    assert_eq!(output.stdout, "False []\n");
    assert_eq!(
        manager
            .read_file("b", "/mnt/data/a.txt", 1024)
            .await
            .unwrap(),
        None
    );
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_figure_comes_back_as_a_png_and_a_trailing_expression_is_shown() {
    let manager = start(config("figure")).await;
    let output = run(
        &manager,
        "t",
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()\n6 * 7",
    )
    .await;
    assert_eq!(output.images.len(), 1, "{:?}", output.logs());
    assert!(output.images[0].starts_with(b"\x89PNG\r\n\x1a\n"));
    assert_eq!(output.result.as_deref(), Some("42"));
    assert!(output.logs().contains("42"));
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exception_comes_back_as_a_traceback() {
    let manager = start(config("traceback")).await;
    let output = run(&manager, "t", "def f():\n    return 1 / 0\nf()").await;
    let error = output.error.clone().expect("an error");
    assert_eq!(error.ename, "ZeroDivisionError");
    assert!(error.traceback.contains("Traceback"), "{error:?}");
    assert!(output
        .logs()
        .contains("ZeroDivisionError: division by zero"));
    assert!(!output.state_reset);
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleep_past_the_timeout_is_interrupted_and_the_next_execution_works() {
    let manager = start(SandboxConfig {
        exec_timeout_secs: 2,
        ..config("timeout-sleep")
    })
    .await;
    run(&manager, "t", "kept = 'yes'").await;
    let started = Instant::now();
    let output = run(&manager, "t", "import time\ntime.sleep(100)").await;
    assert!(output.timed_out, "{output:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let output = run(&manager, "t", "kept").await;
    assert_eq!(output.result.as_deref(), Some("'yes'"), "{output:?}");
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tight_loop_past_the_timeout_is_handled() {
    let manager = start(SandboxConfig {
        exec_timeout_secs: 2,
        ..config("timeout-loop")
    })
    .await;
    let started = Instant::now();
    let output = run(&manager, "t", "while True: pass").await;
    assert!(output.timed_out, "{output:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
    // A loop inside one C call ignores Python-level interrupts: the sandbox is restarted.
    let output = run(&manager, "t", "sum(range(10**12))").await;
    assert!(output.timed_out, "{output:?}");
    assert_eq!(
        run(&manager, "t", "1 + 1").await.result.as_deref(),
        Some("2")
    );
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_interrupts_the_code_and_keeps_the_session() {
    let manager = start(config("cancel")).await;
    run(&manager, "t", "kept = 1").await;
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        canceller.cancel();
    });
    let started = Instant::now();
    let result = manager
        .exec("t", "import time\ntime.sleep(100)", &cancel)
        .await;
    assert!(result.is_err(), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(
        run(&manager, "t", "kept").await.result.as_deref(),
        Some("1")
    );
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_go_in_and_come_out_and_taken_names_are_numbered() {
    let manager = start(config("files")).await;
    let first = manager
        .put_file("t", "../../etc/data.csv", b"a,b\n1,2\n")
        .await
        .unwrap();
    assert_eq!(first, "/mnt/data/data.csv");
    let second = manager.put_file("t", "data.csv", b"x\n").await.unwrap();
    assert_eq!(second, "/mnt/data/data (1).csv");

    let output = run(
        &manager,
        "t",
        "import pandas as pd\ndf = pd.read_csv('data.csv')\ndf.to_csv('/mnt/data/out.csv', index=False)\nint(df.b.sum())",
    )
    .await;
    assert_eq!(output.result.as_deref(), Some("2"), "{output:?}");
    assert!(
        output
            .files
            .iter()
            .any(|f| f.path == "/mnt/data/out.csv" && f.size > 0),
        "{:?}",
        output.files
    );
    let out = manager
        .read_file("t", "/mnt/data/out.csv", 1 << 20)
        .await
        .unwrap();
    assert_eq!(out.as_deref(), Some(&b"a,b\n1,2\n"[..]));
    let second = manager
        .read_file("t", "sandbox:/mnt/data/data (1).csv", 1 << 20)
        .await
        .unwrap();
    assert_eq!(second.as_deref(), Some(&b"x\n"[..]));

    assert_eq!(
        manager
            .read_file("t", "/mnt/data/missing.csv", 1024)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        manager
            .read_file("nobody", "/mnt/data/out.csv", 1024)
            .await
            .unwrap(),
        None
    );
    assert!(manager.read_file("t", "/etc/passwd", 1024).await.is_err());
    assert!(manager
        .read_file("t", "/mnt/data/out.csv", 3)
        .await
        .is_err());
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_expires_and_the_next_execution_starts_fresh() {
    let manager = start(SandboxConfig {
        idle_timeout_secs: 2,
        ..config("idle")
    })
    .await;
    run(&manager, "t", "x = 1").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while manager.has_session("t").await {
        assert!(
            Instant::now() < deadline,
            "the idle session was not removed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(manager.stats().expired_total, 1);
    wait_until_no_containers("test-idle").await;
    let output = run(&manager, "t", "'x' in globals()").await;
    assert_eq!(output.result.as_deref(), Some("False"));
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_least_recently_used_session_is_evicted_beyond_max_sessions() {
    let manager = start(SandboxConfig {
        max_sessions: 2,
        ..config("lru")
    })
    .await;
    run(&manager, "old", "1").await;
    run(&manager, "recent", "1").await;
    run(&manager, "old", "1").await;
    run(&manager, "new", "1").await;
    assert!(!manager.has_session("recent").await);
    assert!(manager.has_session("old").await);
    assert!(manager.has_session("new").await);
    assert_eq!(manager.stats().evicted_total, 1);
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_pool_is_filled_and_used_and_shutdown_removes_everything() {
    let manager = start(SandboxConfig {
        pool_size: 1,
        // The code interpreter's pool alone (E2B's boxes have one of their own).
        box_pool_size: 0,
        ..config("pool")
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while manager.stats().pooled < 1 {
        assert!(Instant::now() < deadline, "the pool was not filled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    manager.ready().await.expect("ready");
    let started = Instant::now();
    run(&manager, "t", "1").await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    while manager.stats().pooled < 1 {
        assert!(Instant::now() < deadline, "the pool was not refilled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        containers_of("test-pool").await.len(),
        2,
        "one in use, one refilled"
    );
    manager.drop_session("t").await;
    assert!(!manager.has_session("t").await);
    manager.shutdown().await;
    assert!(containers_of("test-pool").await.is_empty());
    assert!(manager
        .exec("t", "1", &CancellationToken::new())
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_without_the_image() {
    let manager = start(SandboxConfig {
        image: "assistd-sandbox:no-such-tag".into(),
        ..config("no-image")
    })
    .await;
    assert!(manager.ready().await.is_err());
    assert!(manager
        .exec("t", "1", &CancellationToken::new())
        .await
        .is_err());
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_of_an_earlier_process_are_removed_at_start() {
    let cfg = config("orphans");
    let earlier = start(cfg.clone()).await;
    run(&earlier, "t", "1").await;
    assert_eq!(containers_of("test-orphans").await.len(), 1);
    // The earlier process dies without shutting down; its sandbox stays behind.
    drop(earlier);
    let later = start(cfg).await;
    assert!(containers_of("test-orphans").await.is_empty());
    later.shutdown().await;
}

// Hostile code: contained, reported clearly, and the neighbouring session keeps working.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_is_contained() {
    let manager = start_with_neighbour("fork-bomb", |c| c.exec_timeout_secs = 5).await;
    let output = run(
        &manager,
        "t",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
    )
    .await;
    assert!(output.timed_out || output.state_reset, "{output:?}");
    assert_eq!(
        run(&manager, "t", "2 + 2").await.result.as_deref(),
        Some("4")
    );
    assert_neighbour_works(&manager).await;
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_restarts_the_interpreter_and_keeps_files() {
    let manager = start_with_neighbour("memory-bomb", |c| c.memory_mb = 256).await;
    run(
        &manager,
        "t",
        "open('/mnt/data/keep.txt', 'w').write('kept')",
    )
    .await;
    let output = run(
        &manager,
        "t",
        "x = []\nwhile True:\n    x.append(bytearray(10**7))",
    )
    .await;
    // Either Python raises MemoryError or the kernel kills it and the driver is restarted.
    let error = output.error.clone().expect("an error");
    assert!(
        error.ename == "MemoryError" || output.state_reset,
        "{output:?}"
    );
    if output.state_reset {
        assert!(
            output.logs().contains("variables were lost"),
            "{}",
            output.logs()
        );
    }
    let output = run(&manager, "t", "open('/mnt/data/keep.txt').read()").await;
    assert_eq!(output.result.as_deref(), Some("'kept'"), "{output:?}");
    assert_neighbour_works(&manager).await;
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filling_mnt_data_stops_at_its_size() {
    let manager = start_with_neighbour("fill-data", |c| c.data_size_mb = 16).await;
    let output = run(
        &manager,
        "t",
        "with open('/mnt/data/big', 'wb') as f:\n    for _ in range(100):\n        f.write(b'0' * 2**20)",
    )
    .await;
    assert!(
        output.logs().contains("No space left on device"),
        "{}",
        output.logs()
    );
    assert_eq!(run(&manager, "t", "1").await.result.as_deref(), Some("1"));
    assert_neighbour_works(&manager).await;
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_outside_mnt_data_and_tmp_is_refused() {
    let manager = start_with_neighbour("read-only", |_| {}).await;
    let output = run(&manager, "t", "open('/usr/evil', 'w')").await;
    assert!(
        output.logs().contains("Read-only file system")
            || output.logs().contains("Permission denied"),
        "{}",
        output.logs()
    );
    let output = run(
        &manager,
        "t",
        "open('/opt/assistd/driver/__main__.py', 'a')",
    )
    .await;
    assert!(output.error.is_some(), "{output:?}");
    let output = run(&manager, "t", "open('/tmp/ok', 'w').write('fine')").await;
    assert_eq!(output.result.as_deref(), Some("4"), "{output:?}");
    assert_neighbour_works(&manager).await;
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_flood_is_truncated() {
    let manager = start_with_neighbour("output-flood", |c| c.max_output = 10_000).await;
    let output = run(
        &manager,
        "t",
        "for i in range(10**6):\n    print('spam', i)",
    )
    .await;
    assert!(output.output_truncated, "{}", output.stdout.len());
    assert!(output.stdout.len() + output.stderr.len() < 20_000);
    assert!(output.logs().contains("truncated"));
    assert_neighbour_works(&manager).await;
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_figure_flood_is_capped() {
    let manager = start_with_neighbour("figure-flood", |_| {}).await;
    let output = run(
        &manager,
        "t",
        "import matplotlib.pyplot as plt\nfor i in range(30):\n    plt.figure()\n    plt.plot([0, i])",
    )
    .await;
    assert!(
        !output.images.is_empty() && output.images.len() <= 10,
        "{}",
        output.images.len()
    );
    assert_neighbour_works(&manager).await;
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_process_does_not_break_the_next_execution() {
    let manager = start_with_neighbour("background", |_| {}).await;
    let output = run(
        &manager,
        "t",
        "import subprocess\nsubprocess.Popen(['sh', '-c', 'while true; do echo noise; done'])\nsubprocess.Popen(['sleep', '1000'])\nkept = 1",
    )
    .await;
    assert!(output.error.is_none(), "{output:?}");
    let output = run(&manager, "t", "print('clean')\nkept").await;
    assert_eq!(output.stdout, "clean\n", "{output:?}");
    assert_eq!(output.result.as_deref(), Some("1"));
    assert_neighbour_works(&manager).await;
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_driver_from_inside_restarts_it_and_keeps_files() {
    let manager = start_with_neighbour("kill-driver", |_| {}).await;
    run(
        &manager,
        "t",
        "open('/mnt/data/keep.txt', 'w').write('kept')\nx = 1",
    )
    .await;
    let output = run(&manager, "t", "import os\nos.kill(os.getpid(), 9)").await;
    assert!(output.state_reset, "{output:?}");
    assert!(
        output.logs().contains("variables were lost"),
        "{}",
        output.logs()
    );
    let output = run(&manager, "t", "('x' in globals(), open('keep.txt').read())").await;
    assert_eq!(
        output.result.as_deref(),
        Some("(False, 'kept')"),
        "{output:?}"
    );
    // Everything the sandbox user may signal, at once (from a child, as kill(-1) spares the
    // caller): the container itself lives on.
    let output = run(&manager, "t", "import os\nos.system('kill -9 -1')").await;
    assert!(output.state_reset, "{output:?}");
    let output = run(&manager, "t", "open('keep.txt').read()").await;
    assert_eq!(output.result.as_deref(), Some("'kept'"), "{output:?}");
    assert_neighbour_works(&manager).await;
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_holds_no_server_secrets() {
    let manager = start_with_neighbour("environment", |_| {}).await;
    // Cargo gives this test process CARGO_* variables; none may reach the sandbox.
    let output = run(&manager, "t", "import os\nsorted(os.environ)").await;
    let names = output.result.clone().unwrap_or_default();
    assert!(
        !names.contains("ASSISTD") && !names.contains("CARGO"),
        "{names}"
    );
    assert!(names.contains("HOME"), "{names}");
    let output = run(&manager, "t", "import os\n(os.getuid(), os.getgid())").await;
    assert_eq!(output.result.as_deref(), Some("(10001, 10001)"));
    let output = run(
        &manager,
        "t",
        "[l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0]",
    )
    .await;
    assert_eq!(output.result.as_deref(), Some("'0000000000000000'"));
    assert_neighbour_works(&manager).await;
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn there_is_no_network_but_loopback() {
    let manager = start_with_neighbour("network", |_| {}).await;
    let output = run(
        &manager,
        "t",
        "import socket\nsorted(n for _, n in socket.if_nameindex())",
    )
    .await;
    assert_eq!(output.result.as_deref(), Some("['lo']"), "{output:?}");
    let output = run(
        &manager,
        "t",
        "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)",
    )
    .await;
    assert!(output.error.is_some(), "{output:?}");
    assert_neighbour_works(&manager).await;
    manager.shutdown().await;
}

// Shell and cell-magic variants of the hostile cases: the cell is IPython, so `!` and `%%bash`
// reach a shell directly.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bash_fork_bomb_is_contained() {
    let manager = start_with_neighbour("bash-fork-bomb", |c| c.exec_timeout_secs = 5).await;
    let started = Instant::now();
    let output = run(
        &manager,
        "t",
        "%%bash\nbomb() { bomb | bomb & }; bomb\nwait",
    )
    .await;
    assert!(
        output.timed_out || output.state_reset || output.error.is_none(),
        "{output:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(
        run(&manager, "t", "2 + 2").await.result.as_deref(),
        Some("4")
    );
    assert_neighbour_works(&manager).await;
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yes_flood_is_truncated() {
    let manager = start_with_neighbour("yes-flood", |c| {
        c.max_output = 10_000;
        c.exec_timeout_secs = 3;
    })
    .await;
    let output = run(&manager, "t", "!yes").await;
    assert!(output.output_truncated, "{}", output.stdout.len());
    assert!(output.stdout.len() + output.stderr.len() < 20_000);
    let output = run(&manager, "t", "print('clean')").await;
    assert_eq!(output.stdout, "clean\n", "{output:?}");
    assert_neighbour_works(&manager).await;
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bash_loop_is_stopped_by_the_timeout_and_by_cancelling() {
    let manager = start(SandboxConfig {
        exec_timeout_secs: 2,
        ..config("bash-loop")
    })
    .await;
    run(&manager, "t", "kept = 1").await;
    let started = Instant::now();
    let output = run(&manager, "t", "%%bash\nwhile true; do :; done").await;
    assert!(output.timed_out, "{output:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
    let output = run(&manager, "t", "print('after timeout')\nkept").await;
    assert_eq!(output.stdout, "after timeout\n", "{output:?}");
    assert_eq!(output.result.as_deref(), Some("1"));

    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        canceller.cancel();
    });
    let started = Instant::now();
    let result = manager
        .exec("t", "%%bash\nwhile true; do :; done", &cancel)
        .await;
    assert!(result.is_err(), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(8));
    let output = run(&manager, "t", "print('after cancel')\nkept").await;
    assert_eq!(output.stdout, "after cancel\n", "{output:?}");
    assert_eq!(output.result.as_deref(), Some("1"));
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_background_sleep_is_left_behind_without_blocking() {
    let manager = start_with_neighbour("shell-background", |_| {}).await;
    let started = Instant::now();
    let output = run(&manager, "t", "!sleep 1000 &\nkept = 1").await;
    assert!(output.error.is_none(), "{output:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let output = run(
        &manager,
        "t",
        "!ps -e -o comm= | grep -c '^sleep$' || true\nkept",
    )
    .await;
    assert_eq!(output.stdout.trim(), "0", "{output:?}");
    assert_eq!(output.result.as_deref(), Some("1"));
    assert_neighbour_works(&manager).await;
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_driver_from_a_shell_escape_restarts_it_and_keeps_files() {
    let manager = start_with_neighbour("shell-kill-driver", |_| {}).await;
    run(&manager, "t", "%%writefile /mnt/data/keep.txt\nkept\n").await;
    let output = run(&manager, "t", "x = 1\n!kill -9 $PPID").await;
    assert!(output.state_reset, "{output:?}");
    let output = run(&manager, "t", "!cat keep.txt\n'x' in globals()").await;
    assert_eq!(output.stdout, "kept\n", "{output:?}");
    assert_eq!(output.result.as_deref(), Some("False"));
    assert_neighbour_works(&manager).await;
    manager.shutdown().await;
}

/// Every package of sandbox/openai-packages.txt that the image provides imports, each in a
/// fresh interpreter started from a cell of a session the manager started as the server does
/// (read-only rootfs, uid 10001, no capabilities, no network, the default memory limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_openai_package_imports_in_a_sandbox() {
    let list = include_str!("../sandbox/openai-packages.txt");
    let provided = list
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter(|l| {
            l.split('|')
                .nth(3)
                .is_some_and(|how| !how.trim().starts_with("skipped"))
        })
        .count();
    assert!(
        provided >= 120,
        "the list provides only {provided} packages"
    );

    let mut cfg = config("openai-packages");
    // ~130 imports of heavy libraries (torch, jax, spacy) two at a time: minutes on a busy host.
    cfg.exec_timeout_secs = 900;
    let manager = start(cfg).await;
    let code = format!(
        "PACKAGES = {}\n{}",
        serde_json::to_string(list).unwrap(),
        include_str!("../sandbox/import_check.py")
    );
    let output = run(&manager, "t", &code).await;
    assert!(output.error.is_none(), "{output:?}");
    let report: serde_json::Value =
        serde_json::from_str(output.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {output:?}"));
    let failed = report["failed"].as_object().expect("a 'failed' object");
    assert!(
        failed.is_empty(),
        "these packages do not import: {}",
        serde_json::to_string_pretty(failed).unwrap()
    );
    let imported = report["imported"]
        .as_object()
        .expect("an 'imported' object");
    assert_eq!(imported.len(), provided, "{report}");
    manager.shutdown().await;
}
