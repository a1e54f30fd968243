"""Training: the tf.data pipeline, the augmentation layer (and its numpy preview), the course
CNN, training itself, and the training child process's side.

May import `lab.data` and `lab.config`; never `lab.runs` or Streamlit. TensorFlow is imported
inside the functions that use it.
"""
