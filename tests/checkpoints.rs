//! Sandbox checkpoints through the manager, against the real Docker engine and image, a fresh
//! database of their own and a blob directory of their own: what comes back into the next
//! session, and that the namespace pickle never shows in /mnt/data.

mod common;

use std::time::Duration;

use assistd::blobs::BlobStore;
use assistd::sandbox::{Checkpoints, SandboxConfig, SandboxManager};
use tokio_util::sync::CancellationToken;

struct Setup {
    manager: SandboxManager,
    cfg: SandboxConfig,
    checkpoints: Checkpoints,
    database_url: String,
    blob_dir: std::path::PathBuf,
    thread: String,
}

async fn setup(test: &str, data_size_mb: u64) -> Setup {
    let database_url = common::fresh_database().await;
    let db = assistd::db::connect(&database_url, 4).await.expect("db");
    assistd::db::migrate(&db).await.expect("migrate");
    let thread = format!("thread_{}", uuid::Uuid::new_v4().simple());
    sqlx::query("INSERT INTO threads (id, project, created_at, data) VALUES ($1, 'p', 0, '{}')")
        .bind(&thread)
        .execute(&db)
        .await
        .expect("a thread");
    let blob_dir = std::env::temp_dir().join(format!(
        "assistd-checkpoints-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let blobs = BlobStore::open(None, &blob_dir).await.expect("blobs");
    let mut cfg = SandboxConfig {
        instance: format!("test-checkpoint-{test}"),
        pool_size: 0,
        pool_max: 0,
        exec_timeout_secs: 30,
        checkpoint_secs: 0,
        data_size_mb,
        ..Default::default()
    };
    if let Ok(image) = std::env::var("ASSISTD_SANDBOX_IMAGE") {
        cfg.image = image;
    }
    let checkpoints = Checkpoints::new(db, blobs, Duration::from_secs(3600));
    let manager = SandboxManager::start_with(cfg.clone(), Some(checkpoints.clone()))
        .await
        .expect("these tests need a running Docker daemon");
    Setup {
        manager,
        cfg,
        checkpoints,
        database_url,
        blob_dir,
        thread,
    }
}

impl Setup {
    async fn run(&self, code: &str) -> assistd::sandbox::ExecOutput {
        let out = self
            .manager
            .exec(&self.thread, code, &CancellationToken::new())
            .await
            .expect("the sandbox runs code");
        assert!(out.error.is_none(), "{code}: {}", out.logs());
        out
    }

    /// As if the process died: a new manager of the same instance (which removes the old
    /// one's sandboxes at its start) on the same database and blobs.
    async fn crash(&self) -> SandboxManager {
        SandboxManager::start_with(self.cfg.clone(), Some(self.checkpoints.clone()))
            .await
            .expect("a second manager")
    }

    async fn finish(self) {
        self.manager.shutdown().await;
        common::drop_database(&self.database_url).await;
        let _ = std::fs::remove_dir_all(&self.blob_dir);
    }
}

/// Every path under /mnt/data, hidden ones too, with its kind and size.
const LISTING: &str = "import os\n\
for root, dirs, files in sorted(os.walk('/mnt/data')):\n    \
    for name in sorted(dirs + files):\n        \
        p = os.path.join(root, name)\n        \
        print(p, 'link' if os.path.islink(p) else 'dir' if os.path.isdir(p) else os.path.getsize(p))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_session_has_its_files_and_variables_and_no_trace_of_the_pickle() {
    let s = setup("round-trip", 512).await;
    s.run(
        "import os, numpy as np\n\
         os.makedirs('/mnt/data/sub/deeper', exist_ok=True)\n\
         open('/mnt/data/sub/deeper/été.txt', 'w').write('accents')\n\
         open('/mnt/data/empty', 'w').close()\n\
         open('/mnt/data/.dotfile', 'w').write('hidden but mine')\n\
         open('/mnt/data/big.bin', 'wb').write(os.urandom(7 * 1024 * 1024))\n\
         os.symlink('sub/deeper/été.txt', '/mnt/data/link')\n\
         arr = np.arange(1_000_000)\n\
         def twice(x):\n    return 2 * x",
    )
    .await;
    let before = s.run(LISTING).await.stdout;
    let saved = s.manager.checkpoint(&s.thread).await.expect("checkpoint");
    assert!(saved.expect("a changed session is saved") > 7 * 1024 * 1024);
    assert_eq!(
        s.run(LISTING).await.stdout,
        before,
        "the checkpoint left something"
    );

    s.manager.release(&s.thread).await;
    let back = s
        .run("print(twice(int(arr.sum())), open('/mnt/data/link').read())")
        .await;
    assert_eq!(back.stdout, format!("{} accents\n", 2 * 499_999_500_000u64));
    assert_eq!(
        back.restore_note, None,
        "checkpointed as the session ended, everything back: nothing to tell the model"
    );
    assert_eq!(
        s.run(LISTING).await.stdout,
        before,
        "the restore changed /mnt/data"
    );
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_room_left_in_mnt_data_the_files_are_kept_and_the_note_says_why_the_variables_are_not(
) {
    let s = setup("full", 16).await;
    s.run(
        "import os\n\
         kept = 'small'\n\
         blob = os.urandom(4 * 1024 * 1024)\n\
         open('/mnt/data/filler.bin', 'wb').write(os.urandom(13 * 1024 * 1024))",
    )
    .await;
    let before = s.run(LISTING).await.stdout;
    s.manager
        .checkpoint(&s.thread)
        .await
        .expect("checkpoint")
        .expect("saved");
    assert_eq!(s.run(LISTING).await.stdout, before);

    s.manager.release(&s.thread).await;
    let back = s
        .run("import os\nprint(os.path.getsize('/mnt/data/filler.bin'), 'kept' in dir())")
        .await;
    assert_eq!(back.stdout, format!("{} False\n", 13 * 1024 * 1024));
    let note = back.restore_note.expect("a restore note");
    assert!(note.contains("Variables were NOT restored"), "{note}");
    assert!(note.contains("No space left"), "{note}");
    assert_eq!(s.run(LISTING).await.stdout, before);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_checkpoint_is_written_beside_the_last_which_then_goes() {
    let s = setup("alternate", 512).await;
    let dir = s.blob_dir.join("checkpoints");
    let (first, second) = (dir.join(&s.thread), dir.join(format!("{}.alt", s.thread)));
    let only = |kept: &std::path::Path, gone: &std::path::Path| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while gone.exists() {
            assert!(std::time::Instant::now() < deadline, "{gone:?} stayed");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(kept.exists(), "{kept:?} is missing");
    };
    for (n, (kept, gone)) in [(&first, &second), (&second, &first), (&first, &second)]
        .into_iter()
        .enumerate()
    {
        s.run(&format!("n = {n}")).await;
        s.manager.checkpoint(&s.thread).await.expect("checkpoint");
        only(kept, gone);
        s.manager.release(&s.thread).await;
        let back = s.run("print(n)").await;
        assert_eq!(back.stdout, format!("{n}\n"));
    }
    s.manager.drop_session(&s.thread).await;
    assert!(!first.exists() && !second.exists());
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_older_than_the_last_cell_is_restored_with_the_notice_of_what_may_be_lost() {
    let s = setup("older", 512).await;
    s.run("x = 1").await;
    s.manager
        .checkpoint(&s.thread)
        .await
        .expect("checkpoint")
        .expect("saved");
    s.run("y = 2").await;
    let after = s.crash().await;
    let back = after
        .exec(
            &s.thread,
            "print(x, 'y' in dir())",
            &CancellationToken::new(),
        )
        .await
        .expect("runs");
    assert_eq!(back.stdout, "1 False\n");
    let note = back.restore_note.expect("a notice");
    assert!(note.starts_with("[Sandbox restored:"), "{note}");
    assert!(note.contains("Variables restored: x"), "{note}");
    assert!(note.contains("since then are lost"), "{note}");
    after.shutdown().await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_end_checkpoint_is_restored_silently_once_and_not_after_code_ran_on_it() {
    let s = setup("at-end", 512).await;
    s.run("x = 1").await;
    s.manager.release(&s.thread).await;
    let back = s.run("print(x)").await;
    assert_eq!((back.stdout.as_str(), back.restore_note), ("1\n", None));
    // Restored, unchanged, ended again: still the session's end.
    s.manager.release(&s.thread).await;
    let back = s.run("print(x)").await;
    assert_eq!((back.stdout.as_str(), back.restore_note), ("1\n", None));
    // Code ran on the restored session, then the process died: that checkpoint predates it.
    s.run("z = 3").await;
    let after = s.crash().await;
    let back = after
        .exec(
            &s.thread,
            "print(x, 'z' in dir())",
            &CancellationToken::new(),
        )
        .await
        .expect("runs");
    assert_eq!(back.stdout, "1 False\n");
    let note = back.restore_note.expect("a notice");
    assert!(note.contains("since then are lost"), "{note}");
    after.shutdown().await;
    s.finish().await;
}
