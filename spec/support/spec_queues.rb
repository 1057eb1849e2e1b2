# frozen_string_literal: true

# Real SysV queues for specs: unique keys per process and example, removed
# after each example, and sysctls raised (as root) where a spec needs room.
module SpecQueues
  @counter = 0

  def self.next_key
    @counter += 1
    0x7E00_0000 | ((Process.pid & 0xFFFF) << 8) | (@counter & 0xFF)
  end

  # A fresh queue key; the queue (if anything creates it) is removed after the example.
  def spec_queue_key
    key = SpecQueues.next_key
    (@spec_queue_keys ||= []) << key
    key
  end

  # Configures the sysv transport on a fresh queue, with the spool off (what
  # the queue cannot take is dropped or raised; SpecSpools#use_transport
  # gives sysv a spool), and returns the queue.
  def use_sysv_queue(logger: Logger.new(StringIO.new))
    key = spec_queue_key
    ShopifyEvents.configure do |c|
      c.transport = :sysv
      c.queue_key = key
      c.spool_dir = nil
      c.logger = logger
    end
    ShopifyEvents::Native::Queue.open_or_create(key, 0o600)
  end

  def remove_spec_queues
    Array(@spec_queue_keys).each do |key|
      ShopifyEvents::Native::Queue.open(key).remove
    rescue ShopifyEvents::QueueNotFound
      nil
    end
  end

  # Drains every message now in `queue`, decoded.
  def drain_events(queue)
    events = []
    while (bytes = queue.try_receive)
      events << ShopifyEvents::Event.decode(bytes)
    end
    events
  end

  # Raises kernel.msgmnb (and msgmax) for queues created inside the block,
  # restoring the old values after. Needs root, as CI has.
  def with_queue_limits(msgmnb:, msgmax: nil)
    old = { "msgmnb" => read_sysctl("msgmnb"), "msgmax" => read_sysctl("msgmax") }
    write_sysctl("msgmnb", [msgmnb, old["msgmnb"]].max)
    write_sysctl("msgmax", [msgmax, old["msgmax"]].max) if msgmax
    yield
  ensure
    old&.each { |name, value| write_sysctl(name, value) }
  end

  private

  def read_sysctl(name)
    Integer(File.read("/proc/sys/kernel/#{name}").strip)
  end

  def write_sysctl(name, value)
    File.write("/proc/sys/kernel/#{name}", value.to_s)
  rescue Errno::EACCES, Errno::EPERM, Errno::EROFS => e
    skip "needs root to raise kernel.#{name} (#{e.class}); CI runs as root"
  end
end
