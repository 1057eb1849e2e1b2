# frozen_string_literal: true

# Turns the results of bench/profile_emit.sh (tmp/profile/) into the tables
# of docs/BENCHMARKS.md, "Where emit's time goes": markdown on stdout.
#
#   ruby bench/profile/report.rb [DIR]
require "json"

DIR = ARGV[0] || "tmp/profile"

def median(values)
  values = values.compact.sort
  return nil if values.empty?

  values[values.size / 2]
end

# --- callgrind: Ir per call (slope), inclusive Ir of named functions ---
CG = Dir[File.join(DIR, "callgrind", "*.json")].to_h { |f| [File.basename(f, ".json"), JSON.parse(File.read(f))] }

def ir(variant, event = 0)
  CG[variant]&.dig("total", event)
end

# Ir per call of a Ruby loop body: the loop's slope minus the empty loop's.
def call_ir(variant, event = 0)
  total = ir(variant, event) or return nil
  variant == "floor" ? total : total - ir("empty", event)
end

def incl(variant, pattern, event = 0)
  rows = CG[variant]&.fetch("inclusive") or return nil
  row = rows.find { |_, fn, _| fn.match?(pattern) }
  row ? row[2][event] : 0.0
end

def footprint(variant)
  CG[variant] && (CG[variant]["code_footprint_bytes"].values.sum / 1024.0)
end

# --- perf: ns of CPU per call per part, median over runs ---
def splits(variant)
  Dir[File.join(DIR, "split.#{variant}.*.json")].filter_map do |f|
    JSON.parse(File.read(f))
  rescue JSON::ParserError
    nil # being written
  end
end

def part_ns(variant, who, part = nil)
  values = splits(variant).map do |s|
    r = s[who] or next
    part ? r["parts"].fetch(part, 0.0) : r["ns_per_call"]
  end
  median(values)
end

def part_range(variant, who, part)
  values = splits(variant).filter_map { |s| s.dig(who, "parts", part) }
  values.empty? ? "" : format("%.0f-%.0f", values.min, values.max)
end

# --- wall clock: median over runs of each run's median ---
CUTS = (File.exist?(File.join(DIR, "cuts.json")) ? JSON.parse(File.read(File.join(DIR, "cuts.json"))) : nil)

# kind: "cpu" (the thread's CPU time) or "wall".
def wall(variant, kind = "cpu")
  CUTS && median(CUTS["runs"].map { |r| r.dig(kind, variant) })
end

def wall_range(variant, kind = "cpu")
  return "" unless CUTS

  values = CUTS["runs"].filter_map { |r| r.dig(kind, variant) }
  values.empty? ? "" : format("%.0f-%.0f", values.min, values.max)
end

def fmt(value, digits = 0)
  value.nil? ? "–" : format("%.#{digits}f", value)
end

def table(header, rows)
  puts "| #{header.join(" | ")} |"
  puts "|#{header.map { |h| h.start_with?("·") ? "---" : "---:" }.join("|")}|".sub("---:", "---")
  rows.each { |r| puts "| #{r.join(" | ")} |" }
  puts
end

# === 1. The floor ===
puts "### The floor: `msgsnd` alone (perf, cpu-clock samples, #{splits("emit").size} runs)\n\n"
stat = lambda do |variant|
  csv = File.join(DIR, "stat.#{variant}.csv")
  loop_out = File.join(DIR, "stat.#{variant}.jsonl")
  next nil unless File.exist?(csv) && File.exist?(loop_out)

  calls = JSON.parse(File.readlines(loop_out).grep(/\A\{/).first)["iterations"]
  values = File.readlines(csv).filter_map do |l|
    f = l.split(",")
    [f[2], f[0]] if f.size > 3 && f[0] =~ /\A[\d.]+\z/
  end.to_h
  { calls: calls, task_ns: values["task-clock"].to_f * 1e6 / calls,
    cs: values["context-switches"].to_f, faults: values["page-faults"].to_f,
    loop: JSON.parse(File.readlines(loop_out).grep(/\A\{/).first) }
end
floor_parts = ["msgsnd: kernel", "msgsnd: libc wrapper (user)", "floor loop (Rust)"]
table(%w[part ns/call range],
      floor_parts.map { |p| [p, fmt(part_ns("emit", "floor", p)), part_range("emit", "floor", p)] } +
      [["**total (task-clock)**", fmt(part_ns("emit", "floor")), ""]])
if (s = stat.call("floor"))
  ticks = s[:loop]
  puts "perf stat of a floor-only loop (#{s[:calls]} calls): task-clock #{fmt(s[:task_ns])} ns/call, " \
       "#{fmt(s[:cs])} context switches, #{fmt(s[:faults])} page faults; " \
       "/proc/thread-self/stat over the same batches: utime #{ticks["utime_ticks"]} and stime " \
       "#{ticks["stime_ticks"]} ticks (#{fmt(100.0 * ticks["stime_ticks"] / [
         ticks["utime_ticks"] + ticks["stime_ticks"], 1
       ].max)} % kernel).\n\n"
end

# === 2. emit(String) split ===
native_total = call_ir("native")
anon = incl("native", /sysv_emitter::init::anon/)
receiver = incl("native", /TryConvert for &T>::try_convert/)
with_buf = incl("native", /codec::with_buffer/)
id_str = incl("native", /event::id_string/)
encode = incl("native", /codec::encode_event/)
send = incl("native", /SysvEmitter::try_send/)
crc = incl("native", /crc32c::hw_x86_64::crc32c$/)
topic = incl("native", /topic::check/) + incl("native", /core::str::converts::from_utf8/)
gen = incl("native", /EventId::generate/)
clock = incl("native", /\Aclock_gettime/)
writer = incl("native", /EnvelopeWriter::begin/) + incl("native", /EnvelopeWriter::payload$/) - crc -
         incl("native", /topic::check/)
conversion = encode && (encode - writer - crc - topic - gen - clock)
layer_emit = ir("emit") && ir("transport") && (ir("emit") - ir("transport"))
layer_transport = ir("transport") && ir("native") && (ir("transport") - ir("native"))
vm_call = native_total && anon && (native_total - anon)
glue = anon && ((anon - receiver - with_buf) + (with_buf - id_str - encode - send))

vm_ns = part_ns("emit", "emit", "Ruby VM (dispatch, method layers; GC not under a native call)")
vm_ir = [layer_emit, layer_transport, vm_call].compact.sum
share = ->(x) { vm_ns && x && vm_ir.positive? ? vm_ns * x / vm_ir : nil }
p = ->(part) { part_ns("emit", "emit", part) }
rows = [
  ["Ruby: `ShopifyEvents.emit` (keywords, `@transport`/`@watched` module ivars)", fmt(share.call(layer_emit)),
   fmt(wall("emit") && wall("transport") && (wall("emit") - wall("transport"))), fmt(layer_emit),
   "Ir: callgrind emit − transport loops; ns: perf Ruby-VM share × Ir share (derived); " \
   "CPU diff: emit − transport loops"],
  ["Ruby: transport `DropPolicy#emit`", fmt(share.call(layer_transport)),
   fmt(wall("transport") && wall("native") && (wall("transport") - wall("native"))), fmt(layer_transport),
   "as above, transport − native"],
  ["Ruby → native method call (VM dispatch of a C method, 4 args)", fmt(share.call(vm_call)), "", fmt(vm_call),
   "Ir: native loop − magnus entry's inclusive; ns derived as above"],
  ["receiver conversion (magnus TypedData check under `rb_protect`)",
   fmt(p.call("receiver conversion (TypedData)")), "", fmt(receiver), "perf part / callgrind inclusive"],
  ["argument conversion (topic/key/payload type checks, `encode_event` itself)",
   fmt(p.call("argument conversion + envelope (encode_event)")), "", fmt(conversion),
   "perf: encode_event's own samples (inlined parts included); Ir: encode_event minus the parts below"],
  ["topic validation (UTF-8 + Kafka rules)", fmt(p.call("topic validation")), "", fmt(topic),
   "perf / callgrind inclusive"],
  ["envelope writer (begin, payload, finish; CRC excluded)", fmt(p.call("envelope writer")), "", fmt(writer),
   "perf / callgrind inclusive"],
  ["CRC32C of the 255-byte envelope", fmt(p.call("CRC32C")), "", fmt(crc), "perf / callgrind inclusive"],
  ["id: clock read", fmt(p.call("clock (vDSO)")), "", fmt(clock),
   "perf (vDSO); Ir is the syscall fallback under valgrind"],
  ["id: UUIDv7 generation", fmt(p.call("id generation")), "", fmt(gen), "perf / callgrind inclusive"],
  ["id String = the return value (hex, `rb_enc_str_new`, malloc, GC)", fmt(p.call("id String (hex, allocation, GC)")),
   fmt(wall("x_base") && wall("x_noidstr") && (wall("x_base") - wall("x_noidstr"))), fmt(id_str),
   "perf: samples under id_string (its GC included); CPU diff: x_base − x_noidstr loops"],
  ["buffer, TLS and magnus glue", fmt(p.call("native glue (buffer, TLS, magnus)")), "", fmt(glue),
   "perf / callgrind: entry and with_buffer minus the parts above"],
  ["`msgsnd` user side (queue id, size checks, counter)", fmt(p.call("send path checks (user)")), "", fmt(send),
   "perf / callgrind try_send inclusive"],
  ["`msgsnd`: libc wrapper", fmt(p.call("msgsnd: libc wrapper (user)")), "", "",
   "perf (includes the return from the kernel)"],
  ["`msgsnd`: kernel", fmt(p.call("msgsnd: kernel")), "", "n/a", "perf: kernel samples under libc msgsnd"],
  ["other kernel (interrupts, scheduled out, faults)",
   fmt(["kernel: interrupts", "kernel: scheduled out (other load)", "kernel: other", "kernel: page faults"]
         .sum { |k| p.call(k) || 0 }), "", "", "perf"]
]
puts "### emit(200-byte String), split (CPU ns per call, median of #{splits("emit").size} perf runs; " \
     "Ir per call from callgrind)\n\n"
table(["part", "ns (perf)", "CPU ns (loop diff)", "Ir", "how"], rows)
puts "Total: perf #{fmt(part_ns("emit", "emit"))} ns/call of CPU, floor #{fmt(part_ns("emit", "floor"))} " \
     "(#{fmt(part_ns("emit", "emit") && (part_ns("emit", "emit") / part_ns("emit", "floor")), 2)}×); " \
     "callgrind #{fmt(call_ir("emit"))} Ir/call against the floor's #{fmt(call_ir("floor"))} (user space only); " \
     "code footprint per call: emit #{fmt(footprint("emit"), 1)} KiB, floor #{fmt(footprint("floor"), 1)} KiB.\n\n"

# === 3. the kernel side of msgsnd per loop ===
puts "### `msgsnd` in the kernel, per loop (perf, same process as the floor)\n\n"
kernel_rows = %w[emit emit_hash msgsnd_only x_all m_rubykw_all xh_all m_rubykw_all_hash].filter_map do |v|
  next if splits(v).empty?

  k = part_ns(v, v, "msgsnd: kernel")
  f = part_ns(v, "floor", "msgsnd: kernel")
  [v, fmt(f), fmt(k), fmt(k && f && (k - f)), fmt(call_ir(v)), fmt(footprint(v), 1)]
end
table(["loop", "floor's kernel ns", "loop's kernel ns", "extra", "user Ir/call", "user code KiB/call"], kernel_rows)

# === 3b. both sides of the interference ===
KERNEL_PARTS = ["msgsnd: kernel", "kernel: interrupts", "kernel: scheduled out (other load)", "kernel: other",
                "kernel: page faults"].freeze
user_ns = lambda do |variant|
  total = part_ns(variant, variant) or next nil
  total - KERNEL_PARTS.sum { |k| part_ns(variant, variant, k) || 0 }
end
puts "### Sending and encoding slow each other down (perf; CPU ns per call)\n\n"
interference = [%w[x_base x_nosend], %w[x_all x_all_nosend]].filter_map do |with, without|
  next if splits(with).empty? || splits(without).empty?

  k_extra = part_ns(with, with, "msgsnd: kernel") - part_ns(with, "floor", "msgsnd: kernel")
  u_with = user_ns.call(with)
  u_alone = part_ns(without, without)
  cpu = wall(with) && wall(without) && wall("floor") && (wall(with) - wall(without) - wall("floor"))
  [with, fmt(part_ns(with, "floor", "msgsnd: kernel")), fmt(part_ns(with, with, "msgsnd: kernel")), fmt(k_extra),
   fmt(u_alone), fmt(u_with), fmt(u_with - u_alone), fmt(k_extra + u_with - u_alone), fmt(cpu)]
end
table(["loop", "floor's kernel", "loop's kernel", "kernel extra", "user alone (no msgsnd)", "user in the loop",
       "user extra", "total extra (perf)", "CPU-time check: loop − no-msgsnd loop − floor"], interference)

# === 4. cuts ===
puts "### Prototype cuts (bench/experiments/native), each alone on the copied native path\n\n"
cut_rows = {
  "x_id" => "id String built in place (`rb_usascii_str_new` + fill)",
  "x_send" => "`msgsnd` from the cached id, checks on the error path",
  "x_send_nostats" => "… and no emitted counter (ablation)",
  "x_buf" => "one GVL-guarded buffer instead of the thread-local",
  "x_lite" => "one-pass envelope writer",
  "x_topic" => "one-pass writer + validated-topic cache",
  "x_novalidate" => "one-pass writer, no topic check (ablation: the cache's bound)",
  "x_nocrc" => "one-pass writer, no CRC (ablation)",
  "x_constid" => "no clock, no random id (ablation)",
  "x_noidstr" => "no id String at all (ablation)",
  "x_nosend" => "no `msgsnd` (ablation)",
  "x_all" => "**all candidates** (id, send, buf, lite, topic, hash)",
  "x_all_noidstr" => "all candidates, no id String (ablation)"
}.filter_map do |v, what|
  base_ir = call_ir("x_base")
  next unless base_ir && call_ir(v)

  [what, fmt(base_ir - call_ir(v)), fmt(wall("x_base") && wall(v) && (wall("x_base") - wall(v))),
   fmt(wall("x_base", "wall") && wall(v, "wall") && (wall("x_base", "wall") - wall(v, "wall"))), wall_range(v)]
end
table(["cut", "Ir saved", "CPU ns saved", "wall ns saved", "variant's CPU ns, runs' range"], cut_rows)
hash_rows = {
  "xh_hash" => "lean Hash walk (one dispatch, cached Symbol keys, SWAR strings)",
  "xh_all" => "all candidates, Hash payload",
  "xh_noidstr" => "no id String (ablation), Hash payload"
}.filter_map do |v, what|
  base = call_ir("xh_base")
  next unless base && call_ir(v)

  [what, fmt(base - call_ir(v)), fmt(wall("xh_base") && wall(v) && (wall("xh_base") - wall(v))),
   fmt(wall("xh_base", "wall") && wall(v, "wall") && (wall("xh_base", "wall") - wall(v, "wall"))), wall_range(v)]
end
table(["Hash cut", "Ir saved", "CPU ns saved", "wall ns saved", "variant's CPU ns, runs' range"], hash_rows)

# === 5. dispatch and targets ===
puts "### Module-level emit and the targets (wall clock, same process as the floor)\n\n"
dispatch = {
  "emit" => "product `ShopifyEvents.emit(t, s)`",
  "emit_key" => "product, `key: \"shop-1\"`",
  "m_native_kw_base" => "C function taking keywords, product native path",
  "m_native_kw_all" => "C function taking keywords, all cuts",
  "m_native_kw_all_key" => "… with `key:` (Ruby allocates a Hash for it)",
  "m_rubykw_base" => "Ruby method with keywords → one positional native call, product path",
  "m_rubykw_all" => "… all cuts",
  "m_rubykw_all_key" => "… all cuts, with `key:`",
  "m_positional_all" => "positional native call from the loop (no keywords; bound)",
  "msgsnd_only" => "a native method doing only `msgsnd` (bound)",
  "emit_hash" => "product `emit(t, hash)`",
  "m_native_kw_all_hash" => "C function taking keywords, all cuts, Hash",
  "m_rubykw_all_hash" => "Ruby keywords → native, all cuts, Hash"
}.map do |v, what|
  [what, fmt(call_ir(v)), fmt(wall(v)), fmt(wall(v) && wall("floor") && (wall(v) / wall("floor")), 2), wall_range(v),
   fmt(wall(v, "wall")), fmt(wall(v, "wall") && wall("floor", "wall") && (wall(v, "wall") / wall("floor", "wall")), 2)]
end
table(["variant", "Ir/call", "CPU ns/call", "× floor", "runs' range", "wall ns/call", "× floor (wall)"], dispatch)
puts "Floor: CPU #{fmt(wall("floor"))} ns/call (runs #{wall_range("floor")}), wall #{fmt(wall("floor", "wall"))} " \
     "(runs #{wall_range("floor", "wall")})."
