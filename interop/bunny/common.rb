# Shared helpers for the bunny interop programs (scenario.rb and recover.rb).

require "bunny"
require "logger"
require "securerandom"
require "timeout"
require "uri"

CLIENT = "bunny".freeze
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F".freeze
CONNECT_TIMEOUT = 5 # seconds: TCP connect + AMQP handshake
CONTINUATION_TIMEOUT_MS = 5000 # longest wait for any synchronous reply (declare-ok, ...)
CLOSE_TIMEOUT = 3 # seconds for the best-effort cleanup after a scenario

class Failure < StandardError; end
# Not a StandardError, so no `rescue => e` inside bunny can swallow the watchdog.
class ScenarioTimeout < Exception; end # rubocop:disable Lint/InheritException

def check(cond, reason)
  raise Failure, reason unless cond
end

# What the scenario is doing right now, for failure and timeout messages.
$step = "start"
def step(desc)
  $step = desc
end

# A thread-safe inbox: bunny calls consumer blocks and callbacks on its own
# threads; the scenario waits here for them, always with a timeout.
# (Ruby 3.1's Thread::Queue#pop has no timeout.)
class Mailbox
  def initialize
    @items = []
    @mutex = Mutex.new
    @cond = ConditionVariable.new
  end

  def push(item)
    @mutex.synchronize do
      @items << item
      @cond.broadcast
    end
  end
  alias << push

  def size
    @mutex.synchronize { @items.size }
  end

  def pop(timeout, what)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    @mutex.synchronize do
      while @items.empty?
        left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
        raise Failure, "no #{what} within #{timeout} s (during #{$step})" if left <= 0
        @cond.wait(@mutex, left)
      end
      @items.shift
    end
  end
end

def unique_name(scenario)
  "#{CLIENT}.#{scenario}.#{SecureRandom.hex(6)}"
end

# Bunny raises connection-level errors (a connection.close from the broker, a
# dropped socket) asynchronously in the thread given as :session_error_handler,
# the thread that created the connection by default. This handler forwards them
# to the main thread only while a scenario runs, so a late error from a
# connection being torn down cannot hit the runner between scenarios.
class SessionErrorHandler
  def initialize
    @armed = false
  end

  attr_accessor :armed

  def raise(exc)
    $stderr.puts "bunny session error: #{exc.class}: #{exc.message}"
    Thread.main.raise(exc) if @armed
  end
end
SESSION_ERRORS = SessionErrorHandler.new

LOGGER = Logger.new($stderr, level: ENV["INTEROP_DEBUG"] ? Logger::DEBUG : Logger::WARN)

# Connections opened by the running scenario, closed (or dropped) afterwards.
$connections = []
# [kind, name] of broker objects to delete if the scenario fails half-way.
$leftovers = []

def connect(url, **opts)
  step("connection handshake")
  conn = Bunny.new(url, {
    connection_timeout: CONNECT_TIMEOUT,
    read_timeout: 10,
    write_timeout: 10,
    continuation_timeout: CONTINUATION_TIMEOUT_MS,
    automatically_recover: false,
    logger: LOGGER,
    session_error_handler: SESSION_ERRORS,
    client_properties: { connection_name: "warren-interop-bunny" },
  }.merge(opts))
  $connections << conn
  conn.start
  conn
end

def login_user(url)
  user = URI.parse(url).user
  user ? URI.decode_www_form_component(user) : "guest"
end

def describe(exc)
  text = exc.message.to_s
  text = exc.class.name if text.empty?
  unless exc.is_a?(Failure) || exc.is_a?(ScenarioTimeout)
    text = "#{exc.class}: #{text} (during #{$step})"
  end
  text = text.split.join(" ")
  text.length <= 300 ? text : "#{text[0, 297]}..."
end

def close_quietly(conn)
  Timeout.timeout(CLOSE_TIMEOUT) { conn.close if conn.open? }
rescue Exception # rubocop:disable Lint/RescueException -- best effort only
  begin
    conn.transport&.close
  rescue Exception # rubocop:disable Lint/RescueException
    nil
  end
end

def delete_leftovers(url)
  return if $leftovers.empty?
  conn = nil
  Timeout.timeout(CLOSE_TIMEOUT * 2) do
    conn = Bunny.new(url, connection_timeout: CONNECT_TIMEOUT, automatically_recover: false,
                          continuation_timeout: CONTINUATION_TIMEOUT_MS, logger: LOGGER,
                          session_error_handler: SESSION_ERRORS)
    conn.start
    ch = conn.create_channel
    $leftovers.each do |kind, name|
      ch = conn.create_channel unless ch.open?
      begin
        kind == :queue ? ch.queue_delete(name) : ch.exchange_delete(name)
      rescue StandardError => e
        $stderr.puts "cleanup of #{kind} #{name}: #{e.message}"
      end
    end
  end
rescue Exception => e # rubocop:disable Lint/RescueException
  $stderr.puts "cleanup failed: #{e.class}: #{e.message}"
ensure
  close_quietly(conn) if conn
end

# Runs one scenario under a watchdog; returns nil on success or the reason.
def run_scenario(url, name, limit)
  $step = "start"
  $connections = []
  $leftovers = []
  reason = nil
  begin
    SESSION_ERRORS.armed = true
    Timeout.timeout(limit, ScenarioTimeout, "timed out after #{limit} s during #{$step}") do
      begin
        yield
      rescue ScenarioTimeout
        raise ScenarioTimeout, "timed out after #{limit} s during #{$step}"
      end
    end
  rescue Exception => e # rubocop:disable Lint/RescueException -- any error fails the scenario
    raise if e.is_a?(Interrupt) || e.is_a?(SystemExit)
    reason = describe(e)
    if ENV["INTEROP_DEBUG"]
      $stderr.puts "#{name}: #{e.class}: #{e.message}"
      $stderr.puts e.backtrace.first(15)
    end
  ensure
    SESSION_ERRORS.armed = false
  end
  $connections.each { |c| close_quietly(c) }
  delete_leftovers(url) if reason
  reason
end

def report(name, reason)
  if reason.nil?
    puts "PASS #{CLIENT} #{name}"
  else
    puts "FAIL #{CLIENT} #{name}: #{reason}"
  end
  $stdout.flush
end
