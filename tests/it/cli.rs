//! The `edgestra` binary itself: `validate` and `serve`.

use std::process::Command;

fn edgestra() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgestra"))
}

#[test]
fn validate_reports_every_problem_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "tools:\n  calc: { builtin: calculator }\nagents:\n  helper:\n    model: smollm2-135m-instruct\n    tools: [calc, ghost]\n    colour: blue\n",
    )
    .unwrap();
    let out = edgestra().arg("validate").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.yaml:7:5: agents.helper.colour: unknown field `colour`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.yaml:6:19: tool `ghost` is not defined"),
        "{stderr}"
    );

    std::fs::write(&file, "tools:\n  calc: [unclosed\n").unwrap();
    let out = edgestra().arg("validate").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid YAML"), "{stderr}");
    assert!(
        stderr.contains("bad.yaml:3:") || stderr.contains("bad.yaml:2:"),
        "{stderr}"
    );

    std::fs::write(&file, "tools:\n  calc: { builtin: calculator }\n").unwrap();
    let out = edgestra().arg("validate").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = edgestra()
        .arg("validate")
        .arg(dir.path().join("missing.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn serve_prints_its_urls_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = edgestra()
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .env("EDGESTRA_LOG_FORMAT", "json")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(
            !line.is_empty(),
            "the server exited before printing its URL"
        );
        if line.starts_with("edgestra is serving") {
            break;
        }
    }
    assert!(
        line.contains("the default project")
            && line.contains("/api")
            && line.contains("playground"),
        "{line}"
    );
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
}
