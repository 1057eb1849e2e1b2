# frozen_string_literal: true

require "English"
require "etc"
require "fileutils"
require "socket"
require "tmpdir"

# A PostgreSQL server for specs: initdb into a private data directory, started
# with pg_ctl on a free loopback port (and a private socket directory) the
# first time a spec asks for it, and stopped when the run ends. As root it
# runs as the `postgres` user (PostgreSQL refuses root). Durability is off
# (fsync, synchronous_commit): the specs test behaviour, not disks.
class SpecPostgres
  BIN_DIR = Dir["/usr/lib/postgresql/*/bin"].max_by { |dir| dir[%r{/(\d+)/bin\z}, 1].to_i }

  @instance = nil

  class << self
    # Why PostgreSQL specs cannot run here, or nil when they can.
    def unavailable_reason
      return "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin): apt-get install postgresql" unless BIN_DIR
      return "the pg gem is missing: apt-get install ruby-pg" unless pg_gem?
      return "running as root needs the postgres user (apt-get install postgresql creates it)" if root? && !user?

      nil
    end

    # The server of this run, started on first use.
    def instance
      @instance ||= new.tap(&:start)
    end

    def stop
      @instance&.stop
      @instance = nil
    end

    def root?
      Process.uid.zero?
    end

    private

    def pg_gem?
      require "pg"
      true
    rescue LoadError
      false
    end

    def user?
      Etc.getpwnam("postgres")
      true
    rescue ArgumentError
      false
    end
  end

  attr_reader :port

  def initialize
    @dir = Dir.mktmpdir("spec-postgres-")
    @data = File.join(@dir, "data")
    @port = TCPServer.open("127.0.0.1", 0) { |server| server.addr[1] }
    @databases = 0
    FileUtils.chown("postgres", "postgres", @dir) if self.class.root?
  end

  def start
    run!("initdb", "-D", @data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    options = "-p #{@port} -k #{@dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off " \
              "-c full_page_writes=off -c max_connections=60"
    run!("pg_ctl", "-D", @data, "-l", File.join(@dir, "server.log"), "-o", options, "-w", "-t", "60", "start")
  end

  def stop
    run!("pg_ctl", "-D", @data, "-m", "fast", "-w", "stop") if File.exist?(File.join(@data, "postmaster.pid"))
  ensure
    FileUtils.rm_rf(@dir)
  end

  # A new, empty database; returns its ActiveRecord connection settings.
  def create_database(prefix = "spec")
    @databases += 1
    name = "#{prefix}_#{Process.pid}_#{@databases}"
    PG.connect(host: "127.0.0.1", port: @port, user: "postgres", dbname: "postgres") do |pg|
      pg.exec("CREATE DATABASE #{pg.quote_ident(name)}")
    end
    config(name)
  end

  def config(database)
    { adapter: "postgresql", host: "127.0.0.1", port: @port, username: "postgres", database: database }
  end

  def url(database)
    "postgresql://postgres@127.0.0.1:#{@port}/#{database}"
  end

  def log_text
    path = File.join(@dir, "server.log")
    File.exist?(path) ? File.read(path) : ""
  end

  private

  def run!(tool, *args)
    command = [File.join(BIN_DIR, tool), *args]
    command = ["runuser", "-u", "postgres", "--", *command] if self.class.root?
    output = IO.popen(command, chdir: @dir, err: %i[child out], &:read)
    raise "#{tool} failed (#{$CHILD_STATUS}):\n#{output}\n#{log_text}" unless $CHILD_STATUS.success?

    output
  end
end

if defined?(RSpec.configure)
  RSpec.configure do |config|
    config.after(:suite) { SpecPostgres.stop }
  end
else
  at_exit { SpecPostgres.stop } # bench/transactions.rb --postgres
end
