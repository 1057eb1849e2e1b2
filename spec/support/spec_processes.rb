# frozen_string_literal: true

require "socket"
require "timeout"

# Child processes for specs: started with Process.spawn, stopped by their
# own pid (TERM, then KILL after a bound), never by name.
module SpecProcesses
  ROOT = File.expand_path("../..", __dir__)
  CLI = File.join(ROOT, "lib", "shopify_events", "shopify-events")

  # Spawns `command` with `env` (SHOPIFY_EVENTS_* of this process removed);
  # output goes to `log`. Returns the pid; stopped after the example.
  def spawn_child(env, *command, log:, chdir: ROOT)
    clean = ENV.keys.grep(/\ASHOPIFY_EVENTS_/).to_h { |name| [name, nil] }
    pid = Process.spawn(clean.merge(env), *command, chdir: chdir, in: File::NULL, %i[out err] => log)
    (@spec_children ||= []) << pid
    pid
  end

  # Sends TERM to a child we started and waits (KILL after `timeout`); returns its status.
  def stop_child(pid, timeout: 15)
    SpecProcesses.terminate(pid, grace: timeout)
  ensure
    @spec_children&.delete(pid)
  end

  # TERM, then KILL if `pid` (our child) has not exited within `grace`
  # seconds; returns its status, or nil if it was already reaped. Polls with
  # WNOHANG: a Timeout around a blocking wait can fire after the child was
  # reaped, and a KILL would then name a pid that may be someone else's.
  def self.terminate(pid, grace:)
    Process.kill("TERM", pid)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + grace
    loop do
      _, status = Process.wait2(pid, Process::WNOHANG)
      return status if status
      break if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.02
    end
    Process.kill("KILL", pid)
    Process.wait2(pid).last
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  end

  def stop_spec_children
    Array(@spec_children).dup.each { |pid| stop_child(pid) }
  end

  def wait_for_port(port, pid:, log:, timeout: 30)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      TCPSocket.new("127.0.0.1", port).close
      return
    rescue SystemCallError
      if Process.wait(pid, Process::WNOHANG)
        raise "process #{pid} exited before listening on #{port}:\n#{File.read(log)}"
      end
      raise "nothing listens on #{port} after #{timeout}s:\n#{File.read(log)}" if
        Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.05
    end
  end

  def free_port
    SpecProcesses.free_port
  end

  # A loopback port that was free a moment ago.
  def self.free_port
    TCPServer.open("127.0.0.1", 0) { |server| server.addr[1] }
  end
end

RSpec.configure do |config|
  config.include SpecProcesses
  config.after { stop_spec_children }
end
