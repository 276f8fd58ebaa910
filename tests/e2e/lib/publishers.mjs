// Publishers that restart on one pipeline: `fdsrc fd=0 ! fmp4initcache ! websocketsink` fed by one
// ffmpeg after another on the same stdin, which is what a restarting publisher looks like to the
// element (a new ftyp+moov mid-stream). Shared by restart.test.mjs (MSE) and webcodecs.test.mjs.
// tcpserversrc cannot be used for this: it ends the pipeline when ffmpeg disconnects.

/** `fdsrc fd=0 ! fmp4initcache ! websocketsink` on `port` (0: any; read it with `port('sink')`). */
export const FD_PIPELINE = (port = 0) => `fdsrc fd=0 ! fmp4initcache ! websocketsink port=${port} name=sink`;

/** ffmpeg args → stdout: H.264 + AAC (the notes' movflags, 200 ms fragments, GOP 1 s) at `w`x`h`. */
export const h264 = (w, h) => [
  '-re', '-f', 'lavfi', '-i', `testsrc2=size=${w}x${h}:rate=30`, '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
  '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p', '-g', '30', '-b:v', '600k',
  '-c:a', 'aac', '-b:a', '64k',
  '-f', 'mp4', '-movflags', 'frag_keyframe+default_base_moof', '-frag_duration', '200000', 'pipe:1',
];

/** ffmpeg args → stdout: VP9 + Opus (200 ms fragments, GOP 1 s) at `w`x`h`. */
export const vp9 = (w, h) => [
  '-re', '-f', 'lavfi', '-i', `testsrc2=size=${w}x${h}:rate=30`, '-f', 'lavfi', '-i', 'sine=frequency=660:sample_rate=48000',
  '-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-row-mt', '1', '-g', '30', '-b:v', '800k',
  '-c:a', 'libopus', '-b:a', '64k',
  '-f', 'mp4', '-movflags', 'frag_keyframe+default_base_moof', '-frag_duration', '200000', 'pipe:1',
];

/**
 * Starts ffmpeg (`args`) writing into the pipeline's stdin, which stays open when ffmpeg ends.
 * @param {import('./pipeline.mjs').Scene} scene owns the ffmpeg process
 * @param {import('./pipeline.mjs').GstPipeline} gst started with `{ stdin: 'pipe' }`
 * @returns {{ ff: import('./pipeline.mjs').Proc, flushed: Promise<void> }} `flushed`: all of
 *   ffmpeg's output has been handed to the pipeline.
 */
export function feed(scene, gst, args, name) {
  const ff = scene.ffmpeg(args, { stdout: 'pipe', name });
  ff.child.stdout.pipe(gst.child.stdin, { end: false });
  const flushed = new Promise((resolve) => ff.child.stdout.once('end', resolve));
  return { ff, flushed };
}
