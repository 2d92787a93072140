"""assistd code_interpreter driver: runs inside the sandbox container, one per session, started
as `python3 /opt/assistd/driver` (this package's __main__). One module per concern: protocol
(the JSON-lines channel), capture (fds 1 and 2), files (/mnt/data), outputs (MIME bundles,
images, figures), libraries (numpy, pandas, pyplot: imported ahead, set up when imported),
stream (output as written), interrupts (timeout, SIGINT), python_kernel (IPython), js_kernel
(+ js_kernel.js, Node.js), processes, checkpoint, session (one exec), main.

Cells run in an in-process IPython shell (`Kernel`, its namespace `shell.user_ns`), so they
behave as in a notebook: the trailing expression is shown, display(), !cmd, %magics, %%cell
magics. Each displayed MIME bundle becomes an image (PNG, JPEG and SVG as PNG) or its plain
text in stdout, where the output caps apply to it as to anything printed.

Protocol (newline-delimited JSON, one object per line, both directions):
  driver -> {"type":"ready","pid":N}                        once, before the heavy imports (see
                                                             libraries: imported while unclaimed)
  host   -> {"type":"exec","id":..,"code":..,"timeout":secs,"max_output":bytes}
  driver -> {"type":"result","id":..,"stdout":..,"stderr":..,"output_truncated":..,
             "result":..,"error":null|{"ename","evalue","traceback"},"images":[b64 png],
             "files":[{"path","size"}],"removed":[paths],"timed_out":..,"duration_ms":..}
  host   -> {"type":"checkpoint","id":..,"path":..}         pickle the namespace into `path`
  driver -> {"type":"checkpointed","id":..,"path":..,"size":bytes,"kept":[names],
             "modules":{name: module},"skipped":[{"name","type","reason"}],"duration_ms":..}
  host   -> {"type":"checkpoint","id":..,"path":..,"discard":true}   remove that pickle again
  host   -> {"type":"restore","id":..,"path":..}            load such a pickle into the namespace
                                                             (and remove it)
  driver -> {"type":"restored","id":..,"restored":[names],"modules":{name: module},
             "failed":[{"name","type","reason"}],"duration_ms":..}
  driver -> {"type":"error","id":..|null,"message":..}      for a request it cannot parse
While a JavaScript context runs, its globals go into the same pickle, and "checkpointed" /
"restored" also carry "javascript": {"kept","skipped"} / {"restored","failed"} (see checkpoint).
An exec with "language": "javascript" runs the code in the session's Node.js context instead (see
js_kernel). An exec with "stream": true (the E2B surface) is also answered, while it runs, by
  driver -> {"type":"output","id":..,"name":"stdout"|"stderr","text":..}   output as written
  driver -> {"type":"output","id":..,"name":"result","bundle":{mime: data},"main":bool}
and its result then carries only what was not streamed (no stdout/stderr, no "result" text;
displayed bundles are not turned into images or text). After the first such exec the driver
starts the Node.js context between cells, before a JavaScript cell waits for it.

The protocol uses private duplicates of the original fd 0 and fd 1. User code gets stdin from
/dev/null and fd 1/2 redirected into capture files, so output from os.system() and C code is
captured too and nothing user code does with sys.stdout can corrupt the protocol stream.
"""
