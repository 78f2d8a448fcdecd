import jax

# References (SciPy) are float64: compare in float64. The float32 default is tested in a subprocess.
jax.config.update("jax_enable_x64", True)
