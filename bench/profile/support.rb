# frozen_string_literal: true

# Shared by the profiling scripts in bench/profile and bench/experiments:
# loads the extension and the benchmark-only prototypes, and holds
# kernel.msgmnb high enough for a batch while a script runs.
$LOAD_PATH.unshift(File.expand_path("../../lib", __dir__))
$LOAD_PATH.unshift(File.expand_path("../experiments/native/lib", __dir__))
require "json"
require "etc"
require "shopify_events"
begin
  require "shopify_events_experiments"
rescue LoadError
  abort "bench/experiments/native is not built: run bench/experiments/build.sh"
end

module BenchSupport
  TOPIC = "bench.events"
  STRING = ("a".."z").cycle.first(200).join.freeze
  HASH = { user_id: 12_345, action: "checkout", shop: "example.myshopify.com", amount: 42.5,
           tags: %w[a b c] }.freeze
  MSGMNB = "/proc/sys/kernel/msgmnb"

  module_function

  # Raises kernel.msgmnb to `bytes` (as root) while the block runs, then
  # puts the old value back.
  def with_queue_room(bytes)
    old = Integer(File.read(MSGMNB))
    File.write(MSGMNB, bytes.to_s) if bytes > old
    yield
  rescue Errno::EACCES, Errno::EPERM
    warn "not root: kernel.msgmnb stays #{old}; use a batch small enough for it"
    yield
  ensure
    File.write(MSGMNB, old.to_s) if old && Process.uid.zero?
  end

  # A fresh private queue for `batch` events at a key of this process, with
  # ShopifyEvents configured to send there; yields the key and removes the
  # queue afterwards.
  def with_queue(batch)
    key = 0x7EBF_0000 | (Process.pid & 0xFFFF)
    with_queue_room([batch * 1024, 16_384].max) do
      queue = ShopifyEvents::Native::Queue.create(key, 0o600)
      begin
        ShopifyEvents.configure do |c|
          c.transport = :sysv
          c.queue_key = key
        end
        yield key
      ensure
        queue.remove
      end
    end
  end

  # Empties the queue at `key` outside the timed region and returns how many
  # messages it held. Receives them one by one: the production extension
  # has no call that empties a queue (Native::Bench holds only what is
  # harmless there), and the key and queue id stay the same for emitters
  # that hold them.
  def empty_queue(key)
    queue = ShopifyEvents::Native::Queue.open(key)
    count = 0
    count += 1 while queue.try_receive
    count
  end

  # utime and stime of the calling thread, in clock ticks.
  def thread_times
    fields = File.read("/proc/thread-self/stat").split(") ", 2).last.split
    [Integer(fields[11]), Integer(fields[12])]
  end

  def median(values)
    sorted = values.sort
    sorted[sorted.size / 2]
  end

  def machine
    cpu = File.read("/proc/cpuinfo")[/model name\s*:\s*(.+)/, 1]
    "#{cpu}, #{Etc.nprocessors} cores, Linux #{`uname -r`.strip}, #{RUBY_DESCRIPTION}"
  end
end
